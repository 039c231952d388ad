/// The CUSTOM rules of a workload, or its DENY rules followed by its ALLOW rules, indexed by what a
/// request must carry for them to match.
///
/// A rule whose every `from` entry requires exact principals or exact namespaces can match only a
/// request with one of them, so it is filed in those buckets; one whose every `from` entry
/// requires the peer to have no principal (`notPrincipals: ["*"]`) is filed under the principal
/// id `anonymous`, which only requests without a peer principal look up. The others ("identity-wild") whose
/// every `from` entry requires source or remote IP blocks are filed under the blocks' leading
/// bits (see `addressID`), for HTTP and TCP requests alike, since address checks apply to both.
/// The rest are filed, for HTTP requests, under the exact methods every `to` entry requires, else
/// with the rules for authenticated requests when every `from` entry requires request
/// principals, else under the paths every `to` entry requires (see `PathKeys`), else under the
/// values a `when` condition requires of a header (keyed as paths are; two headers per group,
/// those the most rules can be filed by), else under the ports every `to` entry requires, else as
/// wild; for TCP requests, where method,
/// request-principal and path checks are dropped but port checks are not, under their ports or as
/// wild. A request visits the wild rules (with the rules for authenticated requests when it
/// carries a request principal) and its principal's, namespace's, addresses', method's, path's,
/// header's and port's buckets, merged in evaluation order, so rules written for other callers,
/// networks, methods, paths, header values, ports or for JWT holders cost nothing.
///
/// All lists live in the program's `ProgramCode`: a wild list is a run of rule offsets, each
/// bucket list a run of `(id, offset)` word pairs sorted by id, offsets ascending within an id.
/// Method ids are the snapshot's; port ids are the port numbers.
struct RuleGroup: Sendable {
    /// The number of rules in the group. The count and the path keys come first, and the group is
    /// kept small (104 bytes), so that a decision reads a group's header in as few cache lines as
    /// possible, and an empty group in one load.
    let ruleCount: Int32
    /// How many bytes of a path the keys read.
    let pathKeys: PathKeys
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
    /// `(address id, rule offset)` pairs of identity-wild rules whose every `from` entry requires
    /// source IP blocks (`ipBlocks`), or remote ones (`remoteIpBlocks`) for entries filed in
    /// `byRemoteAddress` (HTTP and TCP).
    let bySourceAddress: PoolRange
    /// The same, for `from` entries requiring remote IP blocks.
    let byRemoteAddress: PoolRange
    /// `(key, rule offset)` pairs of identity-wild rules filed neither by method, nor by request
    /// principal, nor by path, whose `when` conditions require one of the indexed headers to start
    /// with one of their exact or prefix literals, keyed by the start of those literals mixed with
    /// the header's index (`headerKey`) (HTTP).
    let byHeaderPrefix: PoolRange
    /// The same, keyed by the end of their suffix literals.
    let byHeaderSuffix: PoolRange
    /// The indexed headers: each one's slot in the program (`-1`: none) and how its value is keyed.
    let headers: ((slot: Int16, keys: PathKeys), (slot: Int16, keys: PathKeys))

    /// How many headers a group indexes.
    static let indexedHeaders = 2
    /// The principal id under which `byPrincipal` files the rules only a request without a peer
    /// principal can match (see `WorkloadProgramBuilder.requiresNoPrincipal`); interned ids are
    /// smaller.
    static let anonymous = Int32.max - 1

    init(
        wild: PoolRange, wildAuthenticated: PoolRange, wildTCP: PoolRange, byPrincipal: PoolRange,
        byNamespace: PoolRange, byMethod: PoolRange, byPort: PoolRange, byPortTCP: PoolRange, byPathPrefix: PoolRange,
        byPathSuffix: PoolRange, bySourceAddress: PoolRange, byRemoteAddress: PoolRange, pathKeys: PathKeys,
        byHeaderPrefix: PoolRange = .empty, byHeaderSuffix: PoolRange = .empty,
        headers: ((slot: Int32, keys: PathKeys), (slot: Int32, keys: PathKeys)) = ((-1, PathKeys()), (-1, PathKeys())),
        ruleCount: Int
    ) {
        self.ruleCount = Int32(ruleCount)
        self.pathKeys = pathKeys
        self.wild = wild
        self.wildAuthenticated = wildAuthenticated
        self.wildTCP = wildTCP
        self.byPrincipal = byPrincipal
        self.byNamespace = byNamespace
        self.byMethod = byMethod
        self.byPort = byPort
        self.byPortTCP = byPortTCP
        self.byPathPrefix = byPathPrefix
        self.byPathSuffix = byPathSuffix
        self.bySourceAddress = bySourceAddress
        self.byRemoteAddress = byRemoteAddress
        self.byHeaderPrefix = byHeaderPrefix
        self.byHeaderSuffix = byHeaderSuffix
        self.headers = ((Int16(headers.0.slot), headers.0.keys), (Int16(headers.1.slot), headers.1.keys))
    }

    /// Whether some rule is filed under an identity (so the request's ids are worth looking up).
    var isIndexed: Bool { byPrincipal.count > 0 || byNamespace.count > 0 }

    /// Whether some rule is filed by path (so the request's path is worth reading).
    var hasPathIndex: Bool { byPathPrefix.count > 0 || byPathSuffix.count > 0 }

    /// The key of a header value's key (`PathKeys.keys`) for the header of index `index`; `-1`
    /// stays `-1`.
    @inline(__always)
    static func headerKey(_ key: Int32, _ index: Int) -> Int32 {
        key < 0 ? -1 : (key ^ Int32(truncatingIfNeeded: index &* 0x2545_F491)) & 0x7fff_ffff
    }

    /// Whether some rule is filed by a header (so the request's headers are worth reading).
    var hasHeaderIndex: Bool { byHeaderPrefix.count > 0 || byHeaderSuffix.count > 0 }

    /// Whether some rule is filed by address (so the request's addresses are worth parsing).
    var hasAddressIndex: Bool { bySourceAddress.count > 0 || byRemoteAddress.count > 0 }

    /// The bucket id of an address: its first octet for IPv4 (0...255), 256 plus its first 16 bits
    /// for IPv6; IPv4 and IPv6 never match each other's blocks, so their ids never meet.
    @inline(__always)
    static func addressID(_ address: IPAddress) -> Int32 {
        address.isV4
            ? Int32(truncatingIfNeeded: address.low >> 24 & 0xFF)
            : 256 + Int32(truncatingIfNeeded: address.high >> 48)
    }

    /// The bucket id of an address written as text, `-1` when it does not parse; for text that
    /// starts with one to three digits and a dot, the first octet without parsing the rest.
    ///
    /// Text that starts that way and is not a valid address gets an id all the same, which can only
    /// cost a visit: the visited rule's block check parses the address in full and fails.
    static func addressID(text: String) -> Int32 {
        let octet = text.utf8.withContiguousStorageIfAvailable(leadingOctet) ?? -1
        return octet >= 0 ? octet : IPAddress(text).map(addressID) ?? -1
    }

    /// The value of one to three leading digits followed by a dot, if at most 255; else `-1`.
    private static func leadingOctet(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
        var octet: Int32 = 0
        var index = 0
        while index < bytes.count && index < 4 {
            let byte = bytes[index]
            let digit = byte &- UInt8(ascii: "0")
            if digit < 10 && index < 3 {
                octet = octet &* 10 &+ Int32(digit)
            } else {
                return byte == UInt8(ascii: ".") && index > 0 && octet <= 255 ? octet : -1
            }
            index += 1
        }
        return -1
    }

    /// The bucket id every address of a block has, or `nil` when its prefix is shorter than the
    /// bits the id reads (8 for IPv4, 16 for IPv6), so its addresses have several ids.
    static func addressID(of block: IPBlock) -> Int32? {
        guard block.prefixLength >= (block.address.isV4 ? 8 : 16) else { return nil }
        return addressID(block.address)
    }

    /// The candidates for a request with these ids (`-1`: unknown or absent), destination port
    /// (`nil`: none), request principal or not, normalized path (`nil`: none) and source and remote
    /// addresses (`nil`: none or unparsable). On TCP (`isHTTP` false) method, request-principal and
    /// path checks are dropped, so rules filed by them are candidates regardless.
    func candidates(
        principal: Int32, namespace: Int32, method: Int32, port: Int? = nil, authenticated: Bool = false,
        path: String? = nil, headers: (String?, String?) = (nil, nil), source: IPAddress? = nil,
        remote: IPAddress? = nil, isHTTP: Bool, in code: ProgramCode
    ) -> CandidateCursor {
        let addresses = (source.map(Self.addressID) ?? -1, remote.map(Self.addressID) ?? -1)
        let keys = path.map { path in
            Array(path.utf8).withUnsafeBufferPointer { pathKeys.keys($0) }
        } ?? PathKeys.none
        func valueKeys(_ value: String?, _ index: Int, _ keys: PathKeys) -> (prefix: Int32, suffix: Int32) {
            guard let value else { return PathKeys.none }
            let found = Array(value.utf8).withUnsafeBufferPointer { keys.keys($0) }
            return (Self.headerKey(found.prefix, index), Self.headerKey(found.suffix, index))
        }
        let first = valueKeys(headers.0, 0, self.headers.0.keys)
        let second = valueKeys(headers.1, 1, self.headers.1.keys)
        return code.words.withUnsafeBufferPointer {
            candidates(
                principal: principal, namespace: namespace, method: method, port: port, authenticated: authenticated,
                pathKeys: keys, headerKeys: (first, second), addresses: addresses, isHTTP: isHTTP, in: $0)
        }
    }

    /// `candidates(principal:namespace:method:port:authenticated:path:header:source:remote:isHTTP:in:)`
    /// over the code's words, with the path's and the header's keys (`PathKeys.keys`, `PathKeys.none`
    /// without a path or without the header) and the addresses' ids (`addressID`, `-1` for none)
    /// instead of the path, the header and the addresses.
    @inline(__always)
    func candidates(
        principal: Int32, namespace: Int32, method: Int32, port: Int?, authenticated: Bool,
        pathKeys keys: (prefix: Int32, suffix: Int32),
        headerKeys: ((prefix: Int32, suffix: Int32), (prefix: Int32, suffix: Int32)),
        addresses: (source: Int32, remote: Int32), isHTTP: Bool, in code: UnsafeBufferPointer<UInt32>
    ) -> CandidateCursor {
        let portID = port.map { Self.portID($0) } ?? -1
        var cursor: CandidateCursor
        if isHTTP {
            let wild = authenticated ? wildAuthenticated : self.wild
            cursor = CandidateCursor(wild: wild.lower..<wild.upper)
            cursor.add(byMethod, method, code)
            cursor.add(byPort, portID, code)
            cursor.add(byPathPrefix, keys.prefix, code)
            cursor.add(byPathSuffix, keys.suffix, code)
            cursor.add(byHeaderPrefix, headerKeys.0.prefix, code)
            cursor.add(byHeaderSuffix, headerKeys.0.suffix, code)
            cursor.add(byHeaderPrefix, headerKeys.1.prefix, code)
            cursor.add(byHeaderSuffix, headerKeys.1.suffix, code)
        } else {
            cursor = CandidateCursor(wild: wildTCP.lower..<wildTCP.upper)
            cursor.add(byPortTCP, portID, code)
        }
        cursor.add(byPrincipal, principal, code)
        cursor.add(byNamespace, namespace, code)
        cursor.add(bySourceAddress, addresses.source, code)
        cursor.add(byRemoteAddress, addresses.remote, code)
        return cursor
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
    ///
    /// Only the test for an empty list or an absent id is inlined: a request looks up to twelve
    /// lists, and one shared copy of the search keeps the code a decision runs through small.
    @inline(__always)
    static func run(_ pairs: PoolRange, _ id: Int32, _ code: UnsafeBufferPointer<UInt32>) -> (next: Int, end: Int) {
        guard id >= 0, pairs.count > 0 else { return (0, 0) }
        return search(pairs, UInt32(bitPattern: id), code)
    }

    /// `run(_:_:_:)` for a list with pairs and a present id.
    @inline(never)
    static func search(_ pairs: PoolRange, _ key: UInt32, _ code: UnsafeBufferPointer<UInt32>) -> (
        next: Int, end: Int
    ) {
        let id = Int32(bitPattern: key)
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
    /// Bytes of the start of a path that prefix keys read (at most eight), `0` when no rule is
    /// filed by prefix.
    private let prefixBytes: UInt8
    /// Bytes of the end of a path that suffix keys read (at most eight), `0` when no rule is filed
    /// by suffix.
    private let suffixBytes: UInt8

    /// Bytes of the start of a path that prefix keys read, `0` when no rule is filed by prefix.
    @inline(__always) var prefixLength: Int { Int(prefixBytes) }
    /// Bytes of the end of a path that suffix keys read, `0` when no rule is filed by suffix.
    @inline(__always) var suffixLength: Int { Int(suffixBytes) }

    /// The shortest literal a rule may be filed under: shorter ones select too little to be worth
    /// a probe (every path starts with `/`).
    static let minimumLiteral = 4
    /// No keys: the path is absent or no rule is filed by path.
    static let none: (prefix: Int32, suffix: Int32) = (-1, -1)

    /// No keys: nothing is filed.
    init() {
        prefixBytes = 0
        suffixBytes = 0
    }

    /// The group's lengths for these literals: the shortest of each kind, at most eight.
    init(prefixes: [[UInt8]], suffixes: [[UInt8]]) {
        prefixBytes = UInt8(min(8, prefixes.map(\.count).min() ?? 0))
        suffixBytes = UInt8(min(8, suffixes.map(\.count).min() ?? 0))
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
