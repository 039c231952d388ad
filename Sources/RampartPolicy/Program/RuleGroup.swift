/// The rules of one action (CUSTOM, DENY or ALLOW) of a workload, indexed by what a request must
/// carry for them to match.
///
/// A rule whose every `from` entry requires exact principals or exact namespaces can match only a
/// request with one of them, so it is filed in those buckets. The others ("identity-wild") are
/// filed, for HTTP requests, under the exact methods every `to` entry requires, else with the
/// rules for authenticated requests when every `from` entry requires request principals, else
/// under the ports every `to` entry requires, else as wild; for TCP requests, where method and
/// request-principal checks are dropped but port checks are not, under their ports or as wild. A
/// request visits the wild rules (with the rules for authenticated requests when it carries a
/// request principal) and its principal's, namespace's, method's and port's buckets, merged in
/// evaluation order, so rules written for other callers, methods, ports or for JWT holders cost
/// nothing.
///
/// All lists live in the program's `ProgramCode`: a wild list is a run of rule offsets, each
/// bucket list a run of `(id, offset)` word pairs sorted by id, offsets ascending within an id.
/// Method ids are the snapshot's; port ids are the port numbers.
struct RuleGroup: Sendable {
    /// Offsets of identity-wild rules filed neither by method, nor by request principal, nor by
    /// port, ascending (HTTP).
    let wild: PoolRange
    /// Offsets of the `wild` rules and of the identity-wild rules not filed by method whose every
    /// `from` entry requires request principals, ascending (HTTP requests with a request
    /// principal, in place of `wild`).
    let wildAuthenticated: PoolRange
    /// Offsets of identity-wild rules not filed by port, ascending (TCP).
    let wildTCP: PoolRange
    /// `(principal id, rule offset)` pairs.
    let byPrincipal: PoolRange
    /// `(namespace id, rule offset)` pairs.
    let byNamespace: PoolRange
    /// `(method id, rule offset)` pairs of identity-wild rules whose every `to` entry requires
    /// exact methods; HTTP requests visit their method's run instead of all of them.
    let byMethod: PoolRange
    /// `(port, rule offset)` pairs of identity-wild rules whose every `to` entry requires ports,
    /// those filed by method or request principal excepted (HTTP).
    let byPort: PoolRange
    /// `(port, rule offset)` pairs of every identity-wild rule whose every `to` entry requires
    /// ports (TCP).
    let byPortTCP: PoolRange
    /// The number of rules in the group.
    let ruleCount: Int

    /// Whether some rule is filed under an identity (so the request's ids are worth looking up).
    var isIndexed: Bool { byPrincipal.count > 0 || byNamespace.count > 0 }

    /// The candidates for a request with these ids (`-1`: unknown or absent), destination port
    /// (`nil`: none) and request principal or not. On TCP (`isHTTP` false) method and
    /// request-principal checks are dropped, so rules filed by them are candidates regardless.
    func candidates(
        principal: Int32, namespace: Int32, method: Int32, port: Int? = nil, authenticated: Bool = false,
        isHTTP: Bool, in code: ProgramCode
    ) -> CandidateCursor {
        code.words.withUnsafeBufferPointer {
            candidates(
                principal: principal, namespace: namespace, method: method, port: port, authenticated: authenticated,
                isHTTP: isHTTP, in: $0)
        }
    }

    /// `candidates(principal:namespace:method:port:authenticated:isHTTP:in:)` over the code's words.
    @inline(__always)
    func candidates(
        principal: Int32, namespace: Int32, method: Int32, port: Int?, authenticated: Bool, isHTTP: Bool,
        in code: UnsafeBufferPointer<UInt32>
    ) -> CandidateCursor {
        let portID = port.map { Self.portID($0) } ?? -1
        if isHTTP {
            let wild = authenticated ? wildAuthenticated : self.wild
            return CandidateCursor(
                wild: wild.lower..<wild.upper, principal: Self.run(byPrincipal, principal, code),
                namespace: Self.run(byNamespace, namespace, code), method: Self.run(byMethod, method, code),
                port: Self.run(byPort, portID, code))
        }
        return CandidateCursor(
            wild: wildTCP.lower..<wildTCP.upper, principal: Self.run(byPrincipal, principal, code),
            namespace: Self.run(byNamespace, namespace, code), method: (0, 0),
            port: Self.run(byPortTCP, portID, code))
    }

    /// The bucket id of a port: the port number, or `-1` (no bucket) outside 0...65535.
    @inline(__always)
    static func portID(_ port: Int) -> Int32 {
        (0...65535).contains(port) ? Int32(port) : -1
    }

    /// `bucket(_:_:_:)` over a `ProgramCode` (the offsets it returns stay valid after the call).
    static func bucket(_ pairs: PoolRange, _ id: Int32, _ code: ProgramCode) -> StrideTo<Int> {
        code.words.withUnsafeBufferPointer {
            let run = run(pairs, id, $0)
            return stride(from: run.next, to: run.end, by: 2)
        }
    }

    /// The word positions of the offsets filed under `id`: the first and the end, two words apart;
    /// empty for `-1` or no rules.
    @inline(__always)
    static func run(_ pairs: PoolRange, _ id: Int32, _ code: UnsafeBufferPointer<UInt32>) -> (next: Int, end: Int) {
        guard id >= 0, pairs.count > 0 else { return (0, 0) }
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
        return (pairs.lower + 2 * low + 1, pairs.lower + 2 * upper + 1)
    }
}
