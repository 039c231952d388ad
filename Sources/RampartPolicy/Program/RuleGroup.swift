/// The rules of one action (CUSTOM, DENY or ALLOW) of a workload, indexed by what a request must
/// carry for them to match.
///
/// A rule whose every `from` entry requires exact principals or exact namespaces can match only a
/// request with one of them, so it is filed in those buckets. The others ("identity-wild") are
/// filed, for HTTP requests, under the exact methods every `to` entry requires, else with the
/// rules for authenticated requests when every `from` entry requires request principals, else
/// under the paths every `to` entry requires (see `PathKeys`), else under the ports every `to`
/// entry requires, else as wild; for TCP requests, where method, request-principal and path
/// checks are dropped but port checks are not, under their ports or as wild. A request visits the
/// wild rules (with the rules for authenticated requests when it carries a request principal) and
/// its principal's, namespace's, method's, path's and port's buckets, merged in evaluation order,
/// so rules written for other callers, methods, paths, ports or for JWT holders cost nothing.
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
    /// `(key, rule offset)` pairs of identity-wild rules filed by path, neither by method nor by
    /// request principal, keyed by the start of their exact and prefix paths (HTTP).
    let byPathPrefix: PoolRange
    /// The same, keyed by the end of their suffix paths (HTTP).
    let byPathSuffix: PoolRange
    /// How many bytes of a path the keys read.
    let pathKeys: PathKeys
    /// The number of rules in the group.
    let ruleCount: Int

    /// Whether some rule is filed under an identity (so the request's ids are worth looking up).
    var isIndexed: Bool { byPrincipal.count > 0 || byNamespace.count > 0 }

    /// Whether some rule is filed by path (so the request's path is worth reading).
    var hasPathIndex: Bool { byPathPrefix.count > 0 || byPathSuffix.count > 0 }

    /// The candidates for a request with these ids (`-1`: unknown or absent), destination port
    /// (`nil`: none), request principal or not, and normalized path (`nil`: none). On TCP (`isHTTP`
    /// false) method, request-principal and path checks are dropped, so rules filed by them are
    /// candidates regardless.
    func candidates(
        principal: Int32, namespace: Int32, method: Int32, port: Int? = nil, authenticated: Bool = false,
        path: String? = nil, isHTTP: Bool, in code: ProgramCode
    ) -> CandidateCursor {
        let keys = path.map { path in
            Array(path.utf8).withUnsafeBufferPointer { pathKeys.keys($0) }
        } ?? PathKeys.none
        return code.words.withUnsafeBufferPointer {
            candidates(
                principal: principal, namespace: namespace, method: method, port: port, authenticated: authenticated,
                pathKeys: keys, isHTTP: isHTTP, in: $0)
        }
    }

    /// `candidates(principal:namespace:method:port:authenticated:path:isHTTP:in:)` over the code's
    /// words, with the path's keys (`PathKeys.keys`) instead of the path.
    @inline(__always)
    func candidates(
        principal: Int32, namespace: Int32, method: Int32, port: Int?, authenticated: Bool,
        pathKeys keys: (prefix: Int32, suffix: Int32), isHTTP: Bool, in code: UnsafeBufferPointer<UInt32>
    ) -> CandidateCursor {
        let portID = port.map { Self.portID($0) } ?? -1
        if isHTTP {
            let wild = authenticated ? wildAuthenticated : self.wild
            return CandidateCursor(
                wild: wild.lower..<wild.upper, principal: Self.run(byPrincipal, principal, code),
                namespace: Self.run(byNamespace, namespace, code), method: Self.run(byMethod, method, code),
                port: Self.run(byPort, portID, code), pathPrefix: Self.run(byPathPrefix, keys.prefix, code),
                pathSuffix: Self.run(byPathSuffix, keys.suffix, code))
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

    /// Bucket lists of at most this many pairs (one cache line) are scanned and have no run table.
    static let scannedPairs = 8

    /// The word positions of the offsets filed under `id`: the first and the end, two words apart;
    /// empty for `-1` or no rules. A short list is scanned; a longer one is found with one probe of
    /// the run table after its pairs.
    @inline(__always)
    static func run(_ pairs: PoolRange, _ id: Int32, _ code: UnsafeBufferPointer<UInt32>) -> (next: Int, end: Int) {
        guard id >= 0, pairs.count > 0 else { return (0, 0) }
        let key = UInt32(bitPattern: id)
        if pairs.count <= scannedPairs {
            var first = pairs.lower
            let end = pairs.lower + 2 * Int(pairs.count)
            while first < end && code[first] < key { first += 2 }
            var last = first
            while last < end && code[last] == key { last += 2 }
            return first == last ? (0, 0) : (first + 1, last + 1)
        }
        let table = pairs.upper + Int(pairs.count)
        let mask = Int(code[table]) - 1
        var slot = slot(of: id) & mask
        while true {
            let at = table + 1 + 3 * slot
            let found = code[at]
            if found == 0 { return (0, 0) }
            if found == key &+ 1 {
                let first = Int(code[at + 1])
                return (pairs.lower + 2 * first + 1, pairs.lower + 2 * (first + Int(code[at + 2])) + 1)
            }
            slot = (slot + 1) & mask
        }
    }

    /// The home slot of an id in a run table (before masking).
    @inline(__always)
    private static func slot(of id: Int32) -> Int {
        Int(truncatingIfNeeded: (UInt64(UInt32(bitPattern: id)) &* 0x9E37_79B9_7F4A_7C15) >> 40)
    }

    /// The run table of a bucket list whose pairs have these ids (sorted): its size, a power of two
    /// at least twice the distinct ids, then per slot three words: the id + 1 (0 when empty), the
    /// index of its first pair and its number of pairs. It follows the pairs in the code.
    static func runTable(_ ids: [Int32]) -> [UInt32] {
        var runs: [(id: Int32, first: Int, count: Int)] = []
        for (index, id) in ids.enumerated() {
            if let last = runs.last, last.id == id {
                runs[runs.count - 1].count += 1
            } else {
                runs.append((id, index, 1))
            }
        }
        var size = 2
        while size < runs.count * 2 { size *= 2 }
        var table = [UInt32](repeating: 0, count: 1 + 3 * size)
        table[0] = UInt32(size)
        for run in runs {
            var slot = slot(of: run.id) & (size - 1)
            while table[1 + 3 * slot] != 0 { slot = (slot + 1) & (size - 1) }
            table[1 + 3 * slot] = UInt32(bitPattern: run.id) &+ 1
            table[2 + 3 * slot] = UInt32(run.first)
            table[3 + 3 * slot] = UInt32(run.count)
        }
        return table
    }
}

/// How a rule group keys paths: by their first `prefixLength` bytes (exact and prefix patterns) and
/// their last `suffixLength` bytes (suffix patterns), at most eight bytes each, hashed to a
/// non-negative 31-bit key.
///
/// A rule is filed by path when every `to` entry holds a positive `paths` check whose patterns are
/// all exact, prefix or suffix strings of at least `minimumLiteral` bytes (no templates, no `*`):
/// such a rule can match only a path that starts or ends with one of its literals. The group reads
/// as many bytes as its shortest literal of each kind, so every filed literal is keyed; a request
/// visits the rules under its path's keys. Keys of different bytes may collide, which costs a
/// visit, never a decision: a visited rule still checks its paths in full.
struct PathKeys: Sendable, Hashable {
    /// Bytes of the start of a path that prefix keys read, `0` when no rule is filed by prefix.
    let prefixLength: Int
    /// Bytes of the end of a path that suffix keys read, `0` when no rule is filed by suffix.
    let suffixLength: Int

    /// The shortest literal a rule may be filed under: shorter ones select too little to be worth
    /// a probe (every path starts with `/`).
    static let minimumLiteral = 4
    /// No keys: the path is absent or no rule is filed by path.
    static let none: (prefix: Int32, suffix: Int32) = (-1, -1)

    /// The group's lengths for these literals: the shortest of each kind, at most eight.
    init(prefixes: [[UInt8]], suffixes: [[UInt8]]) {
        prefixLength = min(8, prefixes.map(\.count).min() ?? 0)
        suffixLength = min(8, suffixes.map(\.count).min() ?? 0)
    }

    /// The prefix and suffix keys of a normalized path, `-1` where the path is too short (so no
    /// filed literal can match it) or nothing is filed.
    @inline(__always)
    func keys(_ path: UnsafeBufferPointer<UInt8>) -> (prefix: Int32, suffix: Int32) {
        let count = path.count
        let prefix = prefixLength > 0 && count >= prefixLength ? Self.key(path, from: 0, length: prefixLength) : -1
        let suffix =
            suffixLength > 0 && count >= suffixLength
            ? Self.key(path, from: count - suffixLength, length: suffixLength) : -1
        return (prefix, suffix)
    }

    /// The key of a literal filed by prefix (`true`) or suffix.
    func key(literal: [UInt8], prefix: Bool) -> Int32 {
        literal.withUnsafeBufferPointer {
            prefix
                ? Self.key($0, from: 0, length: prefixLength)
                : Self.key($0, from: $0.count - suffixLength, length: suffixLength)
        }
    }

    /// Hashes `length` (at most eight) bytes from `from` into a non-negative 31-bit key.
    @inline(__always)
    static func key(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, length: Int) -> Int32 {
        let word = CodeView.word(bytes, from: from, count: length)
        let product = (word ^ UInt64(length) << 59).multipliedFullWidth(by: 0x9E37_79B9_7F4A_7C15)
        return Int32(truncatingIfNeeded: (product.high ^ product.low) >> 33)
    }
}
