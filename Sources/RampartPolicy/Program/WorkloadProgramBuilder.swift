/// Lays `CompiledPolicy` objects out as a `WorkloadProgram`: rules with their clauses, checks, port
/// and IP values and pattern entries in one `ProgramCode`, with the literals' bytes beside them.
struct WorkloadProgramBuilder {
    /// The rules of one action before indexing: wild rule offsets and bucket entries (see
    /// `RuleGroup`).
    struct PendingGroup {
        /// Identity-wild rules filed neither by method, nor by request principal, nor by port
        /// (visited by every HTTP request).
        var wild: [Int32] = []
        /// Identity-wild rules not filed by method that require request principals (HTTP).
        var authenticated: [Int32] = []
        /// Identity-wild rules not filed by port (visited by every TCP request).
        var wildTCP: [Int32] = []
        var methods: [(id: Int32, position: Int32)] = []
        /// Identity-wild rules filed by path, neither by method nor by request principal, with
        /// their literals (HTTP).
        var paths: [(position: Int32, prefixes: [[UInt8]], suffixes: [[UInt8]])] = []
        /// Identity-wild rules neither filed by method, nor by request principal, nor by path,
        /// whose `when` conditions require a header to start or end with one of some literals:
        /// the header's name, its literals, and the ports the rule requires (`nil`: none), for
        /// the rules `RuleGroup` does not file by their header (HTTP).
        var headers: [(position: Int32, name: String, prefixes: [[UInt8]], suffixes: [[UInt8]], ports: [Int32]?)] = []
        /// Identity-wild rules filed by port, and neither by method, nor by request principal,
        /// nor by path, nor by header (HTTP).
        var ports: [(id: Int32, position: Int32)] = []
        /// Every identity-wild rule filed by port (TCP).
        var portsTCP: [(id: Int32, position: Int32)] = []
        /// Rules filed by exact principals, and (under `RuleGroup.anonymous`) identity-wild rules
        /// whose every `from` entry requires the peer to have no principal.
        var principals: [(id: Int32, position: Int32)] = []
        var namespaces: [(id: Int32, position: Int32)] = []
        /// Identity-wild rules filed by the source IP blocks they require (HTTP and TCP).
        var sourceAddresses: [(id: Int32, position: Int32)] = []
        /// Identity-wild rules filed by the remote IP blocks they require (HTTP and TCP).
        var remoteAddresses: [(id: Int32, position: Int32)] = []
        var ruleCount = 0

        /// This group's entries, then those of `later`, whose rules were all added after this
        /// group's: offsets stay ascending in every list, so one walk meets this group's
        /// candidates first.
        func followed(by later: PendingGroup) -> PendingGroup {
            var both = self
            both.wild += later.wild
            both.authenticated += later.authenticated
            both.wildTCP += later.wildTCP
            both.methods += later.methods
            both.paths += later.paths
            both.headers += later.headers
            both.ports += later.ports
            both.portsTCP += later.portsTCP
            both.principals += later.principals
            both.namespaces += later.namespaces
            both.sourceAddresses += later.sourceAddresses
            both.remoteAddresses += later.remoteAddresses
            both.ruleCount += later.ruleCount
            return both
        }
    }

    let identities: IdentityIDs
    private(set) var code = ProgramCode()
    /// The header offset of each rule, by position (policy order, then rule order).
    private(set) var ruleOffsets: [Int32] = []
    private(set) var policies: [FlatPolicy] = []
    /// Path templates, addressed by pattern entries in the code.
    private(set) var templates: [PathTemplate] = []
    /// Regex-bearing principal suffixes, addressed by pattern entries in the code.
    private(set) var regexes: [PatternRegex] = []
    /// Each service-account check's values holding regex operators, matched against the principal.
    private(set) var accountRegexes: [[StringMatcher]] = []
    private(set) var headerNames: [String] = []
    /// The slot of each header name, so checks reading one header share its slot (and its memo).
    private var headerSlots: [String: Int32] = [:]
    private(set) var claimPaths: [[String]] = []
    /// The values of each service-account check, for principals that are not Istio workload IDs.
    private(set) var accountPatterns: [[ServiceAccountPattern]] = []
    /// Each namespace check's values (see `NamespaceCheck`), by slot.
    private(set) var namespaceChecks: [NamespaceCheck] = []

    init(identities: IdentityIDs) {
        self.identities = identities
    }

    /// A rule's conditions, to find rules that repeat an earlier one.
    private struct Conditions: Hashable {
        let froms: [[Check]]
        let tos: [[Check]]
        let whens: [Check]
    }

    /// Adds policies of one action, in evaluation order, and files their rules for indexing.
    ///
    /// A rule with the same conditions as an earlier rule of the action matches exactly when that
    /// one does, so it can never be the first match: it is laid out (dry-run results and policy
    /// tables still list it) but filed nowhere, so no request visits it.
    mutating func add(_ compiled: [CompiledPolicy]) -> PendingGroup {
        var pending = PendingGroup()
        var seen = Set<Conditions>()
        for policy in compiled {
            let first = ruleOffsets.count
            for rule in policy.rules {
                let offset = append(
                    rule, policy: Int32(policies.count), skipOnTCP: policy.action == .allow && rule.hasHTTPOnly)
                pending.ruleCount += 1
                guard seen.insert(Conditions(froms: rule.froms, tos: rule.tos, whens: rule.whens)).inserted else {
                    continue
                }
                // A rule whose identities are not all interned is treated as wild: slower, never wrong.
                guard let identity = Self.identity(of: rule),
                    let principals = ids(identity.principals, identities.principals),
                    let namespaces = ids(identity.namespaces, identities.namespaces)
                else {
                    // Principal checks apply to TCP too, so such a rule is filed alike for both.
                    if Self.requiresNoPrincipal(rule) {
                        pending.principals.append((RuleGroup.anonymous, offset))
                        continue
                    }
                    if let addresses = Self.addresses(of: rule) {
                        for id in addresses.source { pending.sourceAddresses.append((id, offset)) }
                        for id in addresses.remote { pending.remoteAddresses.append((id, offset)) }
                        continue
                    }
                    let ports = Self.ports(of: rule)
                    if let ports {
                        for port in ports { pending.portsTCP.append((port, offset)) }
                    } else {
                        pending.wildTCP.append(offset)
                    }
                    if let methods = Self.methods(of: rule).flatMap({ ids($0, identities.methods) }) {
                        for id in methods { pending.methods.append((id, offset)) }
                    } else if Self.requiresRequestPrincipal(rule) {
                        pending.authenticated.append(offset)
                    } else if let literals = Self.pathLiterals(of: rule) {
                        pending.paths.append((offset, literals.prefixes, literals.suffixes))
                    } else if let header = Self.headerLiterals(of: rule) {
                        pending.headers.append((offset, header.name, header.prefixes, header.suffixes, ports))
                    } else if let ports {
                        for port in ports { pending.ports.append((port, offset)) }
                    } else {
                        pending.wild.append(offset)
                    }
                    continue
                }
                for id in principals { pending.principals.append((id, offset)) }
                for id in namespaces { pending.namespaces.append((id, offset)) }
            }
            policies.append(FlatPolicy(name: policy.name, action: policy.action, rules: range(from: first)))
        }
        return pending
    }

    /// Adds policies evaluated one by one (dry run); returns their indexes in the policy table.
    mutating func addPolicies(_ compiled: [CompiledPolicy]) -> [Int] {
        compiled.map { policy in
            let first = ruleOffsets.count
            for rule in policy.rules {
                append(rule, policy: Int32(policies.count), skipOnTCP: policy.action == .allow && rule.hasHTTPOnly)
            }
            policies.append(FlatPolicy(name: policy.name, action: policy.action, rules: range(from: first)))
            return policies.count - 1
        }
    }

    /// Writes a group's candidate lists after the rules and indexes them.
    mutating func group(_ given: PendingGroup) -> RuleGroup {
        // Two headers are indexed: those the most rules can be filed by (first filed first on a
        // tie). The rules filable by another header fall back to their ports, else to the wild rules.
        var pending = given
        var counts: [String: Int] = [:]
        for entry in pending.headers { counts[entry.name, default: 0] += 1 }
        var indexed: [String] = []
        for entry in pending.headers where !indexed.contains(entry.name) { indexed.append(entry.name) }
        indexed = Array(
            indexed.enumerated().sorted { (-(counts[$0.element] ?? 0), $0.offset) < (-(counts[$1.element] ?? 0), $1.offset) }
                .map(\.element).prefix(RuleGroup.indexedHeaders))
        var byHeader: [[(position: Int32, prefixes: [[UInt8]], suffixes: [[UInt8]])]] = indexed.map { _ in [] }
        for entry in pending.headers {
            if let index = indexed.firstIndex(of: entry.name) {
                byHeader[index].append((entry.position, entry.prefixes, entry.suffixes))
            } else if let ports = entry.ports {
                for port in ports { pending.ports.append((port, entry.position)) }
            } else {
                pending.wild.append(entry.position)
            }
        }
        pending.wild.sort()
        let wild = PoolRange(start: Int32(code.end), count: Int32(pending.wild.count))
        code.append(pending.wild.map { UInt32(bitPattern: $0) })
        let withAuthenticated = (pending.wild + pending.authenticated).sorted()
        let wildAuthenticated = PoolRange(start: Int32(code.end), count: Int32(withAuthenticated.count))
        code.append(withAuthenticated.map { UInt32(bitPattern: $0) })
        let wildTCP = PoolRange(start: Int32(code.end), count: Int32(pending.wildTCP.count))
        code.append(pending.wildTCP.map { UInt32(bitPattern: $0) })
        func buckets(_ entries: [(id: Int32, position: Int32)]) -> PoolRange {
            let unique = Self.unique(entries).sorted { ($0.id, $0.position) < ($1.id, $1.position) }
            let start = Int32(code.end)
            code.append(unique.flatMap { [UInt32(bitPattern: $0.id), UInt32(bitPattern: $0.position)] })
            if unique.count > RuleGroup.scannedPairs { code.append(RuleGroup.runTable(unique.map(\.id))) }
            return PoolRange(start: start, count: Int32(unique.count))
        }
        let principals = buckets(pending.principals)
        let namespaces = buckets(pending.namespaces)
        let methods = buckets(pending.methods)
        let ports = buckets(pending.ports)
        let portsTCP = buckets(pending.portsTCP)
        let keys = PathKeys(
            prefixes: pending.paths.flatMap(\.prefixes), suffixes: pending.paths.flatMap(\.suffixes))
        let pathPrefixes = buckets(
            pending.paths.flatMap { rule in rule.prefixes.map { (keys.key(literal: $0, prefix: true), rule.position) } })
        let pathSuffixes = buckets(
            pending.paths.flatMap { rule in rule.suffixes.map { (keys.key(literal: $0, prefix: false), rule.position) } })
        let sourceAddresses = buckets(pending.sourceAddresses)
        let remoteAddresses = buckets(pending.remoteAddresses)
        // Both headers' keys share the two lists, each mixed with its header's index.
        let headerKeys = byHeader.map { rules in
            PathKeys(prefixes: rules.flatMap(\.prefixes), suffixes: rules.flatMap(\.suffixes))
        }
        var prefixEntries: [(id: Int32, position: Int32)] = []
        var suffixEntries: [(id: Int32, position: Int32)] = []
        for (index, rules) in byHeader.enumerated() {
            let keys = headerKeys[index]
            for rule in rules {
                for literal in rule.prefixes {
                    prefixEntries.append((RuleGroup.headerKey(keys.key(literal: literal, prefix: true), index), rule.position))
                }
                for literal in rule.suffixes {
                    suffixEntries.append((RuleGroup.headerKey(keys.key(literal: literal, prefix: false), index), rule.position))
                }
            }
        }
        let headerPrefixes = buckets(prefixEntries)
        let headerSuffixes = buckets(suffixEntries)
        let slots = indexed.map { headerSlots[$0] ?? -1 }
        return RuleGroup(
            wild: wild, wildAuthenticated: wildAuthenticated, wildTCP: wildTCP, byPrincipal: principals,
            byNamespace: namespaces, byMethod: methods, byPort: ports, byPortTCP: portsTCP, byPathPrefix: pathPrefixes,
            byPathSuffix: pathSuffixes, bySourceAddress: sourceAddresses, byRemoteAddress: remoteAddresses,
            pathKeys: keys, byHeaderPrefix: headerPrefixes, byHeaderSuffix: headerSuffixes,
            headers: (
                (slots.first ?? -1, headerKeys.first ?? PathKeys()),
                (slots.count > 1 ? slots[1] : -1, headerKeys.count > 1 ? headerKeys[1] : PathKeys())
            ), ruleCount: pending.ruleCount)
    }

    private func ids(_ values: [String], _ table: [String: Int32]) -> [Int32]? {
        var found: [Int32] = []
        for value in values {
            guard let id = table[value] else { return nil }
            found.append(id)
        }
        return found
    }

    private func range(from first: Int) -> PoolRange {
        PoolRange(start: Int32(first), count: Int32(ruleOffsets.count - first))
    }

    /// Lays out a rule: header, clause entries, then each list's checks with their port values.
    ///
    /// A rule with at most one `from` and one `to` entry is an AND of all its checks, so it is laid
    /// out as one list of them (as `when` checks, no entries), ordered across sections by how likely
    /// each check is to fail; only rules that OR entries keep their sections.
    @discardableResult
    private mutating func append(_ rule: CompiledRule, policy: Int32, skipOnTCP: Bool) -> Int32 {
        let header = code.reserve(ProgramCode.ruleWords)
        ruleOffsets.append(Int32(header))
        if rule.froms.count <= 1 && rule.tos.count <= 1 {
            let checks = checkRange((rule.froms.first ?? []) + (rule.tos.first ?? []) + rule.whens)
            let flat = FlatRule(
                policy: policy, index: Int32(rule.index), froms: .empty, tos: .empty, whens: checks,
                skipOnTCP: skipOnTCP, order: FlatRule.writtenOrder, methods: methodFilter(rule), paths: Self.pathFilter(rule))
            code.write(ProgramCode.encode(flat), at: header)
            return Int32(header)
        }
        let fromEntries = code.reserve(rule.froms.count * ProgramCode.clauseWords)
        let toEntries = code.reserve(rule.tos.count * ProgramCode.clauseWords)
        for (index, list) in rule.froms.enumerated() {
            let checks = checkRange(list)
            code.write([UInt32(bitPattern: checks.start), UInt32(bitPattern: checks.count)], at: fromEntries + 2 * index)
        }
        for (index, list) in rule.tos.enumerated() {
            let checks = checkRange(list)
            code.write([UInt32(bitPattern: checks.start), UInt32(bitPattern: checks.count)], at: toEntries + 2 * index)
        }
        let whens = checkRange(rule.whens)
        let flat = FlatRule(
            policy: policy, index: Int32(rule.index),
            froms: PoolRange(start: Int32(fromEntries), count: Int32(rule.froms.count)),
            tos: PoolRange(start: Int32(toEntries), count: Int32(rule.tos.count)), whens: whens, skipOnTCP: skipOnTCP,
            order: Self.sectionOrder(rule), methods: methodFilter(rule), paths: Self.pathFilter(rule))
        code.write(ProgramCode.encode(flat), at: header)
        return Int32(header)
    }

    /// The method filter of a rule (see `FlatRule.methods`): a bit for each exact method every `to`
    /// entry requires, or `0` when some entry allows any method or a method's id is 32 or more.
    private func methodFilter(_ rule: CompiledRule) -> UInt32 {
        guard let methods = Self.methods(of: rule), let ids = ids(methods, identities.methods),
            ids.allSatisfy({ (0..<32).contains($0) })
        else { return 0 }
        return ids.reduce(0) { $0 | 1 << UInt32($1) }
    }

    /// The path filter of a rule (see `FlatRule.paths`), empty when some `to` entry allows paths
    /// that are not exact, prefix or suffix literals.
    static func pathFilter(_ rule: CompiledRule) -> PathFilter {
        guard let literals = pathLiterals(of: rule) else { return PathFilter() }
        return PathFilter(prefixes: literals.prefixes, suffixes: literals.suffixes)
    }

    /// How likely a check is to fail, lowest first: positive checks before negated ones, then by cost.
    private static func rank(_ check: Check) -> Int { (check.negated ? 100 : 0) + kind(of: check).cost }

    /// The order to evaluate a rule's sections in (see `FlatRule.order`): by the rank of the check
    /// each section starts with; an ORed section ranks as its least likely entry to fail, and empty
    /// sections go last.
    static func sectionOrder(_ rule: CompiledRule) -> UInt8 {
        func first(_ list: [Check]) -> Int { list.map(rank).min() ?? 0 }
        let ranks = [
            rule.froms.map(first).max() ?? .max, rule.tos.map(first).max() ?? .max, rule.whens.map(rank).min() ?? .max,
        ]
        let sections = [0, 1, 2].sorted { (ranks[$0], $0) < (ranks[$1], $1) }
        return UInt8(sections[0] | sections[1] << 2 | sections[2] << 4)
    }

    /// Lays out ANDed checks, those most likely to fail first (order does not change an AND of pure
    /// checks), each check's values right after the list.
    ///
    /// A positive check passes only for its few listed values, so it usually fails; a negated one
    /// (`notNamespaces`, `notPaths`) fails only for its few values, so it usually passes. Positive
    /// checks go first, then negated ones, each group cheapest kind first.
    private mutating func checkRange(_ list: [Check]) -> PoolRange {
        let sorted = list.enumerated().sorted {
            (Self.rank($0.element), $0.offset) < (Self.rank($1.element), $1.offset)
        }.map(\.element)
        let start = code.reserve(sorted.count * ProgramCode.checkWords)
        for (index, check) in sorted.enumerated() {
            code.write(ProgramCode.encode(flatten(check)), at: start + ProgramCode.checkWords * index)
        }
        return PoolRange(start: Int32(start), count: Int32(sorted.count))
    }

    /// The kind a check flattens to, for ordering.
    private static func kind(of check: Check) -> FlatCheck.Kind {
        switch check.matcher {
        case .never: return .never
        case .ports: return .port
        case .paths: return .path
        case .requestPrincipals: return .requestPrincipal
        case .ips:
            switch check.attribute {
            case .sourceIP: return .sourceIP
            case .remoteIP: return .remoteIP
            default: return .destinationIP
            }
        case .strings:
            switch check.attribute {
            case .sourcePrincipal: return .principal
            case .sourceNamespace: return .namespace
            case .serviceAccount: return .serviceAccount
            case .trustDomain: return .trustDomain
            case .requestPrincipal: return .requestPrincipal
            case .host: return .host
            case .method: return .method
            case .sni: return .sni
            case .audiences: return .audiences
            case .presenter: return .presenter
            case .header: return .header
            case .inlineHeader: return .inlineHeader
            case .claim: return .claim
            default: return .never
            }
        }
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
            range = PoolRange(
                start: Int32(code.append(values.flatMap(ProgramCode.encode(port:)))), count: Int32(values.count))
        case .ips(let blocks):
            switch check.attribute {
            case .sourceIP: kind = .sourceIP
            case .remoteIP: kind = .remoteIP
            default: kind = .destinationIP
            }
            range = PoolRange(
                start: Int32(code.append(blocks.flatMap(ProgramCode.encode(block:)))), count: Int32(blocks.count))
        case .paths(let matchers):
            kind = .path
            range = PoolRange(
                start: Int32(code.appendPatterns(matchers, templates: &templates, regexes: &regexes)), count: Int32(matchers.count))
        case .requestPrincipals(let patterns):
            // Two pattern entries per value, its issuer's then its subject's; `count` counts values.
            kind = .requestPrincipal
            let entries = patterns.flatMap { [PathMatcher.string($0.issuer), PathMatcher.string($0.subject)] }
            range = PoolRange(
                start: Int32(code.appendPatterns(entries, templates: &templates, regexes: &regexes)), count: Int32(patterns.count))
        case .strings(let matchers):
            switch check.attribute {
            case .sourcePrincipal: kind = .principal
            case .sourceNamespace:
                kind = .namespace
                slot = Int32(namespaceChecks.count)
                namespaceChecks.append(NamespaceCheck(matchers))
            case .serviceAccount:
                kind = .serviceAccount
                slot = Int32(accountPatterns.count)
                accountPatterns.append(
                    matchers.filter { $0.form == .exact || $0.form == .dottedExact }.compactMap { ServiceAccountPattern($0.literal) })
                accountRegexes.append(matchers.filter { $0.form == .regexAccount })
            case .trustDomain: kind = .trustDomain
            case .requestPrincipal: kind = .requestPrincipal
            case .host: kind = .host
            case .method: kind = .method
            case .sni: kind = .sni
            case .audiences: kind = .audiences
            case .presenter: kind = .presenter
            case .header(let name), .inlineHeader(let name):
                if case .header = check.attribute { kind = .header } else { kind = .inlineHeader }
                if let existing = headerSlots[name] {
                    slot = existing
                } else {
                    slot = Int32(headerNames.count)
                    headerSlots[name] = slot
                    headerNames.append(name)
                }
            case .claim(let path):
                kind = .claim
                slot = Int32(claimPaths.count)
                claimPaths.append(path)
            default:
                // Check reads no string for other attributes, so it never matches.
                return FlatCheck(
                    kind: .never, negated: check.negated, httpOnly: check.attribute.isHTTPOnly, start: 0, count: 0, slot: 0)
            }
            range = PoolRange(
                start: Int32(code.appendPatterns(matchers.map(PathMatcher.string), templates: &templates, regexes: &regexes)),
                count: Int32(matchers.count))
        }
        return FlatCheck(
            kind: kind, negated: check.negated, httpOnly: check.attribute.isHTTPOnly, start: range.start, count: range.count,
            slot: slot)
    }

    private static func unique(_ entries: [(id: Int32, position: Int32)]) -> [(id: Int32, position: Int32)] {
        var seen = Set<Int64>()
        return entries.filter { seen.insert(Int64($0.id) << 32 | Int64($0.position)).inserted }
    }
}
