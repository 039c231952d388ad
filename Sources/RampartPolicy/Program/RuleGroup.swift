/// The rules of one action (CUSTOM, DENY or ALLOW) of a workload, indexed by peer identity.
///
/// A rule whose every `from` entry requires exact principals or exact namespaces can match only a
/// request with one of them, so it is filed in those buckets; every other rule is "wild". A request
/// visits its principal's bucket, its namespace's bucket and the wild rules, merged in evaluation
/// order, so rules written for other callers cost nothing.
struct RuleGroup: Sendable {
    /// Rules that do not constrain identity, as ascending positions in the program's rule table.
    let wild: [Int32]
    /// Rules by principal id.
    let byPrincipal: Buckets
    /// Rules by namespace id.
    let byNamespace: Buckets
    /// The number of rules in the group.
    let ruleCount: Int

    /// Whether some rule is filed under an identity (so the request's ids are worth looking up).
    var isIndexed: Bool { !byPrincipal.pool.isEmpty || !byNamespace.pool.isEmpty }

    /// The candidates for a request with these identity ids (`-1`: unknown or absent).
    @inline(__always)
    func candidates(principal: Int32, namespace: Int32) -> CandidateCursor {
        CandidateCursor(
            wild: 0..<wild.count, principal: byPrincipal.range(principal), namespace: byNamespace.range(namespace))
    }
}

/// Rule positions grouped by an integer id, stored flat: `pool[starts[id]..<starts[id + 1]]`.
struct Buckets: Sendable {
    let starts: [Int32]
    let pool: [Int32]

    /// Groups `(id, position)` entries, positions ascending within each id; ids are in `0..<idCount`.
    init(_ entries: [(id: Int32, position: Int32)], idCount: Int) {
        guard !entries.isEmpty else {
            starts = []
            pool = []
            return
        }
        var counts = [Int32](repeating: 0, count: idCount + 1)
        for entry in entries { counts[Int(entry.id) + 1] += 1 }
        for index in 1..<counts.count { counts[index] += counts[index - 1] }
        starts = counts
        var next = counts
        var pool = [Int32](repeating: 0, count: entries.count)
        for entry in entries {
            pool[Int(next[Int(entry.id)])] = entry.position
            next[Int(entry.id)] += 1
        }
        self.pool = pool
    }

    /// The pool range of an id's rules; empty for `-1` or an id with no rules.
    @inline(__always)
    func range(_ id: Int32) -> Range<Int> {
        guard id >= 0, Int(id) + 1 < starts.count else { return 0..<0 }
        return Int(starts[Int(id)])..<Int(starts[Int(id) + 1])
    }
}

/// Walks the union of three ascending position lists in ascending order, each position once.
struct CandidateCursor {
    private var wild: Range<Int>
    private var principal: Range<Int>
    private var namespace: Range<Int>

    init(wild: Range<Int>, principal: Range<Int>, namespace: Range<Int>) {
        self.wild = wild
        self.principal = principal
        self.namespace = namespace
    }

    /// The next candidate position of `group`, or `nil` when all are visited.
    @inline(__always)
    mutating func next(_ group: RuleGroup) -> Int32? {
        if principal.isEmpty && namespace.isEmpty {
            guard let index = wild.popFirst() else { return nil }
            return group.wild[index]
        }
        var best = Int32.max
        if let index = wild.first { best = group.wild[index] }
        if let index = principal.first { best = min(best, group.byPrincipal.pool[index]) }
        if let index = namespace.first { best = min(best, group.byNamespace.pool[index]) }
        if best == .max { return nil }
        if let index = wild.first, group.wild[index] == best { wild.removeFirst() }
        if let index = principal.first, group.byPrincipal.pool[index] == best { principal.removeFirst() }
        if let index = namespace.first, group.byNamespace.pool[index] == best { namespace.removeFirst() }
        return best
    }
}
