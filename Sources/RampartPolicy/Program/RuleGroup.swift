/// The rules of one action (CUSTOM, DENY or ALLOW) of a workload, indexed by peer identity.
///
/// A rule whose every `from` entry requires exact principals or exact namespaces can match only a
/// request with one of them, so it is filed in those buckets; every other rule is "wild". A request
/// visits its principal's bucket, its namespace's bucket and the wild rules, merged in evaluation
/// order, so rules written for other callers cost nothing. All three lists live in the program's
/// `ProgramCode`: `wild` is a run of rule offsets, each bucket list a run of `(id, offset)` word
/// pairs sorted by id, offsets ascending within an id.
struct RuleGroup: Sendable {
    /// Offsets of rules that constrain neither identity nor (exactly) the method, ascending.
    let wild: PoolRange
    /// Offsets of every rule that does not constrain identity, ascending (for TCP requests).
    let wildAll: PoolRange
    /// `(principal id, rule offset)` pairs.
    let byPrincipal: PoolRange
    /// `(namespace id, rule offset)` pairs.
    let byNamespace: PoolRange
    /// `(method id, rule offset)` pairs of identity-wild rules whose every `to` entry requires
    /// exact methods; HTTP requests visit their method's run instead of all of them.
    let byMethod: PoolRange
    /// The number of rules in the group.
    let ruleCount: Int

    /// Whether some rule is filed under an identity (so the request's ids are worth looking up).
    var isIndexed: Bool { byPrincipal.count > 0 || byNamespace.count > 0 }

    /// The candidates for a request with these ids (`-1`: unknown or absent). On TCP (`isHTTP`
    /// false) method checks are dropped, so every identity-wild rule is a candidate.
    func candidates(principal: Int32, namespace: Int32, method: Int32, isHTTP: Bool, in code: ProgramCode)
        -> CandidateCursor
    {
        code.words.withUnsafeBufferPointer {
            candidates(principal: principal, namespace: namespace, method: method, isHTTP: isHTTP, in: $0)
        }
    }

    /// `candidates(principal:namespace:method:isHTTP:in:)` over the code's words.
    @inline(__always)
    func candidates(
        principal: Int32, namespace: Int32, method: Int32, isHTTP: Bool, in code: UnsafeBufferPointer<UInt32>
    ) -> CandidateCursor {
        let wild = isHTTP ? self.wild : wildAll
        return CandidateCursor(
            wild: wild.lower..<wild.upper, principal: Self.bucket(byPrincipal, principal, code),
            namespace: Self.bucket(byNamespace, namespace, code),
            method: Self.bucket(byMethod, isHTTP ? method : -1, code))
    }

    /// `bucket(_:_:_:)` over a `ProgramCode` (the offsets it returns stay valid after the call).
    static func bucket(_ pairs: PoolRange, _ id: Int32, _ code: ProgramCode) -> StrideTo<Int> {
        code.words.withUnsafeBufferPointer { bucket(pairs, id, $0) }
    }

    /// The word offsets of the pairs filed under `id`, stepping by 2; empty for `-1` or no rules.
    @inline(__always)
    static func bucket(_ pairs: PoolRange, _ id: Int32, _ code: UnsafeBufferPointer<UInt32>) -> StrideTo<Int> {
        let end = pairs.lower + 2 * Int(pairs.count)
        guard id >= 0, pairs.count > 0 else { return stride(from: end, to: end, by: 2) }
        let key = UInt32(bitPattern: id)
        // Binary search for the first pair with this id.
        var low = 0
        var high = Int(pairs.count)
        while low < high {
            let middle = (low + high) / 2
            if code[pairs.lower + 2 * middle] < key { low = middle + 1 } else { high = middle }
        }
        var upper = low
        while upper < Int(pairs.count) && code[pairs.lower + 2 * upper] == key { upper += 1 }
        return stride(from: pairs.lower + 2 * low + 1, to: pairs.lower + 2 * upper + 1, by: 2)
    }
}
