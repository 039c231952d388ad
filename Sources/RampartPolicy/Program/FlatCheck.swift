/// One check of a `WorkloadProgram`: what it reads, how its result is negated, and where its values
/// live in the program's pools, so evaluating it touches no class and no nested array.
struct FlatCheck: Sendable {
    /// What the check reads; each kind names the pool its values live in.
    enum Kind: UInt8, Sendable {
        case never
        case port
        case method
        case principal
        case namespace
        case requestPrincipal
        case sni
        case host
        case serviceAccount
        case sourceIP
        case remoteIP
        case destinationIP
        case path
        case header
        case claim
        case audiences
        case presenter
        case trustDomain
        case inlineHeader

        /// A rough cost rank: cheaper and more selective kinds are checked first within a clause.
        var cost: Int {
            switch self {
            case .never: return 0
            case .port: return 1
            case .method: return 2
            case .principal, .namespace, .requestPrincipal, .sni, .trustDomain: return 3
            case .host, .serviceAccount: return 4
            case .sourceIP, .remoteIP, .destinationIP: return 5
            case .path: return 6
            case .header, .inlineHeader: return 7
            case .claim, .audiences, .presenter: return 8
            }
        }
    }

    let kind: Kind
    let negated: Bool
    /// Whether the attribute exists only for HTTP (skipped on TCP where the action allows).
    let httpOnly: Bool
    /// The first value: a word offset in the program code for ports and IP blocks, else an index
    /// into the program's pattern pool (`values`).
    let start: Int32
    /// The number of values.
    let count: Int32
    /// The header-name or claim-path slot, for `header` and `claim`.
    let slot: Int32

    /// The check reduced to its pattern entry at `index` (request principals keep two per value).
    @inline(__always)
    func entry(_ index: Int) -> FlatCheck {
        FlatCheck(
            kind: kind, negated: negated, httpOnly: httpOnly, start: start + Int32(index * ProgramCode.patternWords),
            count: 1, slot: slot)
    }
}

/// A range of a program pool, stored as two 32-bit integers.
struct PoolRange: Sendable, Hashable {
    let start: Int32
    let count: Int32

    static let empty = PoolRange(start: 0, count: 0)

    @inline(__always) var lower: Int { Int(start) }
    @inline(__always) var upper: Int { Int(start) + Int(count) }
}

/// One rule of a program: ORed `from` and `to` clauses and ANDed `when` checks. `froms` and `tos`
/// start at the word offset of their first clause entry and count entries; `whens` starts at the word
/// offset of its first check and counts checks (see `ProgramCode`).
struct FlatRule: Sendable {
    /// The policy it belongs to (an index into the program's policy table).
    let policy: Int32
    /// The rule's index in its policy, as decisions report it.
    let index: Int32
    let froms: PoolRange
    let tos: PoolRange
    let whens: PoolRange
    /// Whether an ALLOW rule reads HTTP-only attributes, which makes it unusable on TCP.
    let skipOnTCP: Bool
    /// The order its three sections are evaluated in, two bits each from the low end (0 `from`,
    /// 1 `to`, 2 `when`): the section most likely to fail first, since an AND of pure checks
    /// stops at the first failure whatever the order.
    var order: UInt8 = FlatRule.writtenOrder

    /// The snapshot's ids (below 32) of the exact methods every `to` entry requires, one bit each;
    /// `0` when the rule may match any method. An HTTP request with another method skips the rule
    /// without reading its checks.
    var methods: UInt32 = 0
    /// What the rule requires of the path (`PathFilter`), `0` for nothing: an HTTP request whose
    /// path cannot match skips the rule without reading its checks.
    var paths: PathFilter = PathFilter()

    /// `from`, then `to`, then `when`.
    static let writtenOrder: UInt8 = 0 | 1 << 2 | 2 << 4
}

/// A rule's path requirement in one word: the lengths its prefix and suffix keys read (four bits
/// each, `0` for none) and a 24-bit Bloom filter of the keys of its literals (`PathKeys.key`).
///
/// A rule gets one when every `to` entry requires paths that are exact, prefix or suffix literals
/// (`WorkloadProgramBuilder.pathLiterals`): a path none of whose keys is in the filter cannot
/// match, and the rule is skipped. Keys that share a bit cost a visit, never a decision.
struct PathFilter: Sendable, Hashable {
    let bits: UInt32

    init(bits: UInt32 = 0) {
        self.bits = bits
    }

    /// The filter of these literals (exact and prefix ones keyed by their start, suffix ones by
    /// their end), reading as many bytes as the shortest of each kind, at most eight.
    init(prefixes: [[UInt8]], suffixes: [[UInt8]]) {
        let prefixLength = min(8, prefixes.map(\.count).min() ?? 0)
        let suffixLength = min(8, suffixes.map(\.count).min() ?? 0)
        var bits = UInt32(prefixLength) | UInt32(suffixLength) << 4
        for literal in prefixes where prefixLength > 0 {
            literal.withUnsafeBufferPointer { bits |= Self.bit(PathKeys.key($0, from: 0, length: prefixLength), suffix: false) }
        }
        for literal in suffixes where suffixLength > 0 {
            literal.withUnsafeBufferPointer {
                bits |= Self.bit(PathKeys.key($0, from: $0.count - suffixLength, length: suffixLength), suffix: true)
            }
        }
        self.bits = prefixLength + suffixLength > 0 ? bits : 0
    }

    /// Whether the filter says nothing (every path passes).
    @inline(__always) var isEmpty: Bool { bits == 0 }

    /// The filter bit of a key.
    @inline(__always)
    private static func bit(_ key: Int32, suffix: Bool) -> UInt32 {
        let mixed = UInt64(UInt32(bitPattern: key) ^ (suffix ? 0x5bd1_e995 : 0)) &* 0x9E37_79B9_7F4A_7C15
        return 1 << (8 + UInt32(truncatingIfNeeded: (mixed >> 32) % 24))
    }

    /// Whether a normalized path may match (no filter: always).
    @inline(__always)
    func admits(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        let prefixLength = Int(bits & 0xf)
        let suffixLength = Int(bits >> 4 & 0xf)
        if prefixLength > 0 && path.count >= prefixLength
            && bits & Self.bit(PathKeys.key(path, from: 0, length: prefixLength), suffix: false) != 0
        {
            return true
        }
        return suffixLength > 0 && path.count >= suffixLength
            && bits & Self.bit(PathKeys.key(path, from: path.count - suffixLength, length: suffixLength), suffix: true)
                != 0
    }
}

/// A policy as the fast path reports it.
struct FlatPolicy: Sendable {
    /// `namespace/name`.
    let name: String
    let action: AuthorizationPolicy.Action
    /// Its rules, as positions in the program's rule table.
    let rules: PoolRange
}
