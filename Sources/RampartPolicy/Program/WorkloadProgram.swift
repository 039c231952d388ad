/// The authorization policies of one workload compiled into flat, cache-friendly tables: the form
/// the per-request fast path evaluates.
///
/// Rules, with their clauses, checks (cheapest first within each ANDed list), port values, pattern
/// entries and the candidate lists of each action, live in one `ProgramCode` array, so a decision
/// starts with few cache misses. IP blocks are inline too; literals share one byte pool; each action's
/// rules are indexed by the exact principals, namespaces and methods they require, as snapshot-wide
/// ids (`IdentityIDs`), and by the ports and request principals they require (`RuleGroup`). Built
/// once per resolved workload and immutable afterwards; the explain path keeps using the
/// `CompiledPolicy` objects it came from.
final class WorkloadProgram: Sendable {
    // What every decision reads comes first, so that it shares the object's first cache lines: the
    // flags, the identity ids, where the code lies, the policy table (for the deciding policy's
    // name), then the DENY-and-ALLOW group and the (usually empty) CUSTOM one.

    /// Whether an enforced ALLOW policy applies (even one without rules).
    let hasAllow: Bool
    /// Whether there are dry-run policies (kept beside the groups so the common case reads no array).
    let hasDryRun: Bool
    /// Whether an enforced CUSTOM policy has rules (so the CUSTOM group is read at all).
    let hasCustom: Bool
    /// Ids of the exact principals and namespaces the groups are indexed by.
    let identities: IdentityIDs
    /// The program's own copy of the code's words and bytes, freed with the program. A decision
    /// reads them through these addresses and counts, without reaching the arrays' headers.
    private let words: CodeMemory<UInt32>
    private let bytes: CodeMemory<UInt8>
    /// The policies, for the name of the one that decides.
    let policies: [FlatPolicy]
    /// Where the ALLOW rules start: every DENY rule's header lies before this offset, every ALLOW
    /// rule's at or after it.
    let allowStart: Int32
    /// The DENY rules, then the ALLOW rules, in one index: a request's candidates are found with
    /// one lookup per list, and its walk meets every DENY candidate before the first ALLOW one, so
    /// the first rule that matches decides (see `ResolvedWorkload.decide`).
    let enforced: RuleGroup
    let custom: RuleGroup
    let code: ProgramCode
    /// Path templates, addressed by the code's pattern entries.
    let templates: [PathTemplate]
    /// Regex-bearing principal suffixes, addressed by the code's pattern entries.
    let regexes: [PatternRegex]
    /// The headers the checks read, by slot.
    let headerNames: [HeaderName]
    let claimPaths: [[String]]
    /// Each service-account check's values (see `WorkloadProgramBuilder.accountPatterns`).
    let accountPatterns: [[ServiceAccountPattern]]
    /// Each service-account check's values holding regex operators (usually none).
    let accountRegexes: [[StringMatcher]]
    /// Each namespace check's values.
    let namespaceChecks: [NamespaceCheck]
    /// The header offset of each rule, by position (policy order, then rule order).
    let ruleOffsets: [Int32]
    /// Dry-run policies, as indexes into `policies`.
    let dryRun: [Int32]

    /// Compiles `policies` (in evaluation order) with the snapshot's identity ids, or with ids of its
    /// own when none are given.
    init(policies compiled: [CompiledPolicy], identities: IdentityIDs? = nil) {
        var builder = WorkloadProgramBuilder(identities: identities ?? IdentityIDs(policies: compiled))
        let enforced = compiled.filter { !$0.dryRun }
        let custom = builder.add(enforced.filter { $0.action == .custom })
        let deny = builder.add(enforced.filter { $0.action == .deny })
        allowStart = Int32(builder.code.end)
        let allow = builder.add(enforced.filter { $0.action == .allow })
        dryRun = builder.addPolicies(compiled.filter(\.dryRun)).map(Int32.init)
        hasAllow = enforced.contains { $0.action == .allow }
        hasDryRun = !dryRun.isEmpty
        self.custom = builder.group(custom)
        self.enforced = builder.group(deny.followed(by: allow))
        hasCustom = self.custom.ruleCount > 0
        code = builder.code
        words = CodeMemory(code.words)
        bytes = CodeMemory(code.bytes)
        templates = builder.templates
        regexes = builder.regexes
        headerNames = builder.headerNames.map(HeaderName.init)
        claimPaths = builder.claimPaths
        accountPatterns = builder.accountPatterns
        accountRegexes = builder.accountRegexes
        namespaceChecks = builder.namespaceChecks
        policies = builder.policies
        ruleOffsets = builder.ruleOffsets
        self.identities = builder.identities
    }

    deinit {
        words.free()
        bytes.free()
    }

    /// Runs `body` with the program's code borrowed as a `CodeView`.
    @inline(__always)
    func withView<R>(_ body: (CodeView) -> R) -> R {
        withExtendedLifetime(self) { body(CodeView(words: words.buffer, bytes: bytes.buffer)) }
    }

    /// Ids of the exact principals the groups are indexed by.
    var principalIDs: [String: Int32] { identities.principals }
    /// Ids of the exact namespaces the groups are indexed by.
    var namespaceIDs: [String: Int32] { identities.namespaces }

    /// The position (policy order, then rule order) of the rule whose header is at `offset`.
    func position(ofRuleAt offset: Int32) -> Int32? {
        ruleOffsets.firstIndex(of: offset).map(Int32.init)
    }

    /// Every check, rule by rule (for tests and diagnostics).
    var checks: [FlatCheck] {
        ruleOffsets.flatMap { offset -> [FlatCheck] in
            let rule = code.rule(Int(offset))
            var lists: [PoolRange] = []
            for entry in [rule.froms, rule.tos] {
                for index in 0..<Int(entry.count) { lists.append(code.clause(entry.lower + ProgramCode.clauseWords * index)) }
            }
            lists.append(rule.whens)
            return lists.flatMap { list in
                (0..<Int(list.count)).map { code.check(list.lower + ProgramCode.checkWords * $0) }
            }
        }
    }
}

/// The values of one `namespaces` or `source.namespace` check, matched against the peer's SPIFFE
/// ID as Istio's regex matches them (see `NamespacePattern`).
struct NamespaceCheck: Sendable {
    /// Whether a value is `*`: then every principal with one namespace segment
    /// (`NamespacePattern.Segment.one`) matches.
    let anySegment: Bool
    /// Whether every value is exact or a prefix, with neither `*` nor `/` in its text: then a
    /// principal with one namespace segment matches exactly when the segment itself matches one of
    /// the check's pattern entries, which is cheaper to compare.
    let bySegment: Bool
    /// Whether a value holds regex operators other than `*`: its regex may then match a principal
    /// without a namespace segment.
    let hasRegex: Bool
    let patterns: [NamespacePattern]

    init(_ matchers: [StringMatcher]) {
        anySegment = matchers.contains { $0.form == .presence || $0.form == .anyValue }
        bySegment = matchers.allSatisfy { matcher in
            (matcher.form == .exact || matcher.form == .prefix) && NamespacePattern.isIndexable(matcher.literal)
        }
        patterns = matchers.map(NamespacePattern.init)
        hasRegex = patterns.contains(where: \.isRegex)
    }
}

/// A copy of an array in memory of its own, freed with its owner: its address and count sit in the
/// owner's object, so reading them touches no array header. Immutable once made.
struct CodeMemory<Element: BitwiseCopyable>: @unchecked Sendable {
    let buffer: UnsafeBufferPointer<Element>

    init(_ elements: [Element]) {
        let memory = UnsafeMutableBufferPointer<Element>.allocate(capacity: max(elements.count, 1))
        _ = memory.initialize(from: elements)
        buffer = UnsafeBufferPointer(start: memory.baseAddress, count: elements.count)
    }

    /// Frees the memory; called once, by the owner's `deinit`.
    func free() {
        UnsafeMutableRawPointer(mutating: buffer.baseAddress)?.deallocate()
    }
}
