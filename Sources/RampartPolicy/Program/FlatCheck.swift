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

    /// `from`, then `to`, then `when`.
    static let writtenOrder: UInt8 = 0 | 1 << 2 | 2 << 4
}

/// A policy as the fast path reports it.
struct FlatPolicy: Sendable {
    /// `namespace/name`.
    let name: String
    let action: AuthorizationPolicy.Action
    /// Its rules, as positions in the program's rule table.
    let rules: PoolRange
}
