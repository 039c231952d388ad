/// Flattens `CompiledPolicy` objects into the tables of a `WorkloadProgram`.
struct WorkloadProgramBuilder {
    /// The rules of one action before indexing: wild positions and identity-bucket entries.
    struct PendingGroup {
        var wild: [Int32] = []
        var principals: [(id: Int32, position: Int32)] = []
        var namespaces: [(id: Int32, position: Int32)] = []
        var ruleCount = 0
    }

    private(set) var checks: [FlatCheck] = []
    private(set) var clauses: [PoolRange] = []
    private(set) var rules: [FlatRule] = []
    private(set) var policies: [FlatPolicy] = []
    private(set) var ports: [Int] = []
    private(set) var strings: [StringMatcher] = []
    private(set) var paths: [PathMatcher] = []
    private(set) var ips: [IPBlock] = []
    private(set) var headerNames: [String] = []
    private(set) var claimPaths: [[String]] = []
    private(set) var principalIDs: [String: Int32] = [:]
    private(set) var namespaceIDs: [String: Int32] = [:]

    /// Adds policies of one action, in evaluation order, and files their rules for indexing.
    mutating func add(_ compiled: [CompiledPolicy]) -> PendingGroup {
        var pending = PendingGroup()
        for policy in compiled {
            for rule in policy.rules {
                let position = Int32(rules.count)
                append(rule, policy: Int32(policies.count), skipOnTCP: policy.action == .allow && rule.hasHTTPOnly)
                pending.ruleCount += 1
                guard let identity = Self.identity(of: rule) else {
                    pending.wild.append(position)
                    continue
                }
                for principal in identity.principals {
                    pending.principals.append((Self.intern(principal, in: &principalIDs), position))
                }
                for namespace in identity.namespaces {
                    pending.namespaces.append((Self.intern(namespace, in: &namespaceIDs), position))
                }
            }
            policies.append(FlatPolicy(name: policy.name, action: policy.action, rules: range(of: policy)))
        }
        return pending
    }

    /// Adds policies evaluated one by one (dry run); returns their indexes in the policy table.
    mutating func addPolicies(_ compiled: [CompiledPolicy]) -> [Int] {
        compiled.map { policy in
            for rule in policy.rules {
                append(rule, policy: Int32(policies.count), skipOnTCP: policy.action == .allow && rule.hasHTTPOnly)
            }
            policies.append(FlatPolicy(name: policy.name, action: policy.action, rules: range(of: policy)))
            return policies.count - 1
        }
    }

    /// Indexes a group once every id is known.
    func group(_ pending: PendingGroup) -> RuleGroup {
        // Entries were appended in position order, so Buckets keeps positions ascending per id.
        RuleGroup(
            wild: pending.wild, byPrincipal: Buckets(Self.unique(pending.principals), idCount: principalIDs.count),
            byNamespace: Buckets(Self.unique(pending.namespaces), idCount: namespaceIDs.count),
            ruleCount: pending.ruleCount)
    }

    private func range(of policy: CompiledPolicy) -> PoolRange {
        PoolRange(start: Int32(rules.count - policy.rules.count), count: Int32(policy.rules.count))
    }

    private mutating func append(_ rule: CompiledRule, policy: Int32, skipOnTCP: Bool) {
        let froms = clauseRange(rule.froms)
        let tos = clauseRange(rule.tos)
        let whens = checkRange(rule.whens)
        rules.append(
            FlatRule(policy: policy, index: Int32(rule.index), froms: froms, tos: tos, whens: whens, skipOnTCP: skipOnTCP))
    }

    private mutating func clauseRange(_ lists: [[Check]]) -> PoolRange {
        let ranges = lists.map { checkRange($0) }
        let start = Int32(clauses.count)
        clauses += ranges
        return PoolRange(start: start, count: Int32(ranges.count))
    }

    /// Appends ANDed checks, cheapest kinds first (order does not change an AND of pure checks).
    private mutating func checkRange(_ list: [Check]) -> PoolRange {
        let flat = list.map { flatten($0) }.enumerated().sorted {
            ($0.element.kind.cost, $0.offset) < ($1.element.kind.cost, $1.offset)
        }.map(\.element)
        let start = Int32(checks.count)
        checks += flat
        return PoolRange(start: start, count: Int32(flat.count))
    }

    private mutating func flatten(_ check: Check) -> FlatCheck {
        var slot: Int32 = 0
        let kind: FlatCheck.Kind
        let range: PoolRange
        switch check.matcher {
        case .never:
            return FlatCheck(kind: .never, negated: check.negated, httpOnly: check.attribute.isHTTPOnly, start: 0, count: 0, slot: 0)
        case .ports(let values):
            kind = .port
            range = PoolRange(start: Int32(ports.count), count: Int32(values.count))
            ports += values
        case .ips(let blocks):
            switch check.attribute {
            case .sourceIP: kind = .sourceIP
            case .remoteIP: kind = .remoteIP
            default: kind = .destinationIP
            }
            range = PoolRange(start: Int32(ips.count), count: Int32(blocks.count))
            ips += blocks
        case .paths(let matchers):
            kind = .path
            range = PoolRange(start: Int32(paths.count), count: Int32(matchers.count))
            paths += matchers
        case .strings(let matchers):
            switch check.attribute {
            case .sourcePrincipal: kind = .principal
            case .sourceNamespace: kind = .namespace
            case .serviceAccount: kind = .serviceAccount
            case .requestPrincipal: kind = .requestPrincipal
            case .host: kind = .host
            case .method: kind = .method
            case .sni: kind = .sni
            case .audiences: kind = .audiences
            case .presenter: kind = .presenter
            case .header(let name):
                kind = .header
                slot = Int32(headerNames.count)
                headerNames.append(name)
            case .claim(let path):
                kind = .claim
                slot = Int32(claimPaths.count)
                claimPaths.append(path)
            default:
                // Check reads no string for other attributes, so it never matches.
                return FlatCheck(
                    kind: .never, negated: check.negated, httpOnly: check.attribute.isHTTPOnly, start: 0, count: 0, slot: 0)
            }
            range = PoolRange(start: Int32(strings.count), count: Int32(matchers.count))
            strings += matchers
        }
        return FlatCheck(
            kind: kind, negated: check.negated, httpOnly: check.attribute.isHTTPOnly, start: range.start, count: range.count,
            slot: slot)
    }

    /// The exact principals or namespaces a rule requires, or `nil` when it can match any identity.
    ///
    /// Every `from` entry must hold a positive principals (preferred) or namespaces check whose
    /// values are all exact; a request without one of those values fails that check.
    static func identity(of rule: CompiledRule) -> (principals: [String], namespaces: [String])? {
        guard !rule.froms.isEmpty else { return nil }
        var principals: [String] = []
        var namespaces: [String] = []
        for clause in rule.froms {
            if let values = exactValues(clause, .sourcePrincipal) {
                principals += values
            } else if let values = exactValues(clause, .sourceNamespace) {
                namespaces += values
            } else {
                return nil
            }
        }
        return (principals, namespaces)
    }

    private static func exactValues(_ clause: [Check], _ attribute: Attribute) -> [String]? {
        for check in clause where check.attribute == attribute && !check.negated {
            guard case .strings(let matchers) = check.matcher,
                matchers.allSatisfy({ $0.form == .exact && !$0.ignoreCase })
            else { continue }
            return matchers.map(\.literal)
        }
        return nil
    }

    private static func intern(_ value: String, in table: inout [String: Int32]) -> Int32 {
        if let id = table[value] { return id }
        let id = Int32(table.count)
        table[value] = id
        return id
    }

    private static func unique(_ entries: [(id: Int32, position: Int32)]) -> [(id: Int32, position: Int32)] {
        var seen = Set<Int64>()
        return entries.filter { seen.insert(Int64($0.id) << 32 | Int64($0.position)).inserted }
    }
}
