/// The authorization policies of one workload compiled into flat, cache-friendly tables: the form
/// the per-request fast path evaluates.
///
/// Rules are contiguous arrays of checks (cheapest first within each ANDed list), matcher values
/// live in typed pools addressed by ranges, and each action's rules are indexed by the exact
/// principals and namespaces they require (`RuleGroup`). Built once per resolved workload and
/// immutable afterwards; the explain path keeps using the `CompiledPolicy` objects it came from.
final class WorkloadProgram: Sendable {
    let checks: [FlatCheck]
    /// ANDed lists of checks (`from`/`to` entries), as ranges of `checks`.
    let clauses: [PoolRange]
    let rules: [FlatRule]
    let policies: [FlatPolicy]
    let ports: [Int]
    let strings: [StringMatcher]
    let paths: [PathMatcher]
    let ips: [IPBlock]
    let headerNames: [String]
    let claimPaths: [[String]]
    /// Ids of the exact principals and namespaces the groups are indexed by.
    let principalIDs: [String: Int32]
    let namespaceIDs: [String: Int32]
    let custom: RuleGroup
    let deny: RuleGroup
    let allow: RuleGroup
    /// Whether an enforced ALLOW policy applies (even one without rules).
    let hasAllow: Bool
    /// Dry-run policies, as indexes into `policies`.
    let dryRun: [Int32]

    init(policies compiled: [CompiledPolicy]) {
        var builder = WorkloadProgramBuilder()
        let enforced = compiled.filter { !$0.dryRun }
        let custom = builder.add(enforced.filter { $0.action == .custom })
        let deny = builder.add(enforced.filter { $0.action == .deny })
        let allow = builder.add(enforced.filter { $0.action == .allow })
        dryRun = builder.addPolicies(compiled.filter(\.dryRun)).map(Int32.init)
        hasAllow = enforced.contains { $0.action == .allow }
        self.custom = builder.group(custom)
        self.deny = builder.group(deny)
        self.allow = builder.group(allow)
        checks = builder.checks
        clauses = builder.clauses
        rules = builder.rules
        policies = builder.policies
        ports = builder.ports
        strings = builder.strings
        paths = builder.paths
        ips = builder.ips
        headerNames = builder.headerNames
        claimPaths = builder.claimPaths
        principalIDs = builder.principalIDs
        namespaceIDs = builder.namespaceIDs
    }
}
