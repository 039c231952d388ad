/// What a rule requires of a request, read from its compiled checks: the facts the builder files
/// rules by (`RuleGroup`) and their filters (`FlatRule`) are derived from.
extension WorkloadProgramBuilder {
    /// The exact principals or namespaces a rule requires, or `nil` when it can match any identity.
    ///
    /// Every `from` entry must hold a positive principals (preferred) or namespaces check whose
    /// values are all exact; a request without one of those values fails that check.
    static func identity(of rule: CompiledRule) -> (principals: [String], namespaces: [String])? {
        fromEntries(rule, { exactValues($0, .sourcePrincipal) }, indexableNamespaces)
    }

    /// The exact namespaces a `from` entry requires, when each can be looked up by a principal's
    /// namespace segment (see `NamespacePattern.isIndexable`).
    private static func indexableNamespaces(_ clause: [Check]) -> [String]? {
        guard let values = exactValues(clause, .sourceNamespace), values.allSatisfy(NamespacePattern.isIndexable)
        else { return nil }
        return values
    }

    /// The address ids (`RuleGroup.addressID`) an identity-wild rule requires of the source and
    /// remote addresses, or `nil` when it can match addresses no id bounds.
    ///
    /// Every `from` entry must hold a positive source (preferred) or remote IP blocks check whose
    /// blocks all have prefixes long enough for one id: a request whose address has none of those
    /// ids fails that check. An entry whose blocks all failed to parse contributes no id, since it
    /// matches no address. Address checks apply on TCP too, so TCP requests use this as well.
    static func addresses(of rule: CompiledRule) -> (source: [Int32], remote: [Int32])? {
        fromEntries(rule, { addressIDs($0, .sourceIP) }, { addressIDs($0, .remoteIP) })
    }

    /// What `preferred`, or else `other`, finds in each `from` entry of a rule, gathered per
    /// function; `nil` when the rule has no `from` entry or some entry gives neither anything.
    private static func fromEntries<Value>(
        _ rule: CompiledRule, _ preferred: ([Check]) -> [Value]?, _ other: ([Check]) -> [Value]?
    ) -> ([Value], [Value])? {
        guard !rule.froms.isEmpty else { return nil }
        var first: [Value] = []
        var second: [Value] = []
        for clause in rule.froms {
            if let values = preferred(clause) {
                first += values
            } else if let values = other(clause) {
                second += values
            } else {
                return nil
            }
        }
        return (first, second)
    }

    private static func addressIDs(_ clause: [Check], _ attribute: Attribute) -> [Int32]? {
        for check in clause where check.attribute == attribute && !check.negated {
            guard case .ips(let blocks) = check.matcher else { continue }
            let ids = blocks.compactMap(RuleGroup.addressID(of:))
            if ids.count == blocks.count { return ids }
        }
        return nil
    }

    /// The exact methods an identity-wild rule requires, or `nil` when it can match any method.
    ///
    /// Every `to` entry must hold a positive methods check whose values are all exact; an HTTP
    /// request without one of those methods fails that check. On TCP method checks are dropped, so
    /// TCP requests visit these rules whatever this says.
    static func methods(of rule: CompiledRule) -> [String]? {
        guard !rule.tos.isEmpty else { return nil }
        var methods: [String] = []
        for clause in rule.tos {
            guard let values = exactValues(clause, .method) else { return nil }
            methods += values
        }
        return methods
    }

    /// Whether every `from` entry of a rule holds a positive request principals check with at least
    /// one pattern: an HTTP request without a request principal fails that check. (On TCP the
    /// check is dropped, so TCP requests ignore this.)
    static func requiresRequestPrincipal(_ rule: CompiledRule) -> Bool {
        !rule.froms.isEmpty
            && rule.froms.allSatisfy { clause in
                clause.contains { check in
                    guard check.attribute == .requestPrincipal, !check.negated,
                        case .requestPrincipals(let patterns) = check.matcher
                    else { return false }
                    return !patterns.isEmpty
                }
            }
    }

    /// The path literals an identity-wild rule requires, split into exact-or-prefix and suffix ones,
    /// or `nil` when it can match paths no literal bounds (see `PathKeys`).
    ///
    /// Every `to` entry must hold a positive paths check whose patterns are all exact, prefix or
    /// suffix strings of at least `PathKeys.minimumLiteral` bytes; an HTTP request whose path
    /// neither starts with one of the exact and prefix literals nor ends with one of the suffix
    /// literals fails that check. On TCP path checks are dropped, so TCP requests ignore this.
    static func pathLiterals(of rule: CompiledRule) -> (prefixes: [[UInt8]], suffixes: [[UInt8]])? {
        guard !rule.tos.isEmpty else { return nil }
        var prefixes: [[UInt8]] = []
        var suffixes: [[UInt8]] = []
        for clause in rule.tos {
            let found = clause.first { check in
                guard check.attribute == .path, !check.negated, case .paths(let matchers) = check.matcher,
                    !matchers.isEmpty
                else { return false }
                return matchers.allSatisfy { matcher in
                    guard case .string(let string) = matcher, !string.ignoreCase, string.form != .presence,
                        string.form != .anyValue
                    else {
                        return false
                    }
                    return string.literal.utf8.count >= PathKeys.minimumLiteral
                }
            }
            guard let found, case .paths(let matchers) = found.matcher else { return nil }
            for case .string(let string) in matchers {
                if string.form == .suffix {
                    suffixes.append(Array(string.literal.utf8))
                } else {
                    prefixes.append(Array(string.literal.utf8))
                }
            }
        }
        return (prefixes, suffixes)
    }

    /// Whether every `from` entry of a rule requires the peer to have no principal (a negated
    /// principals check holding `*`, Istio's way of saying "without an mTLS identity"): only a
    /// request without one can match it.
    static func requiresNoPrincipal(_ rule: CompiledRule) -> Bool {
        !rule.froms.isEmpty
            && rule.froms.allSatisfy { clause in
                clause.contains { check in
                    guard check.attribute == .sourcePrincipal, check.negated, case .strings(let matchers) = check.matcher
                    else { return false }
                    return matchers.contains { $0.form == .presence }
                }
            }
    }

    /// The header a rule's `when` conditions require to start or end with one of some literals, with
    /// those literals, or `nil` when there is none.
    ///
    /// The first positive `request.headers[name]` condition whose values are all exact, prefix or
    /// suffix strings of at least `PathKeys.minimumLiteral` bytes (no `*`, no presence) qualifies:
    /// `when` conditions are ANDed over the whole rule, so a request whose header has none of those
    /// starts or ends, or that lacks the header, fails the rule.
    static func headerLiterals(of rule: CompiledRule) -> (name: String, prefixes: [[UInt8]], suffixes: [[UInt8]])? {
        for check in rule.whens {
            guard case .header(let name) = check.attribute, !check.negated, case .strings(let matchers) = check.matcher,
                !matchers.isEmpty,
                matchers.allSatisfy({ matcher in
                    !matcher.ignoreCase && matcher.form != .presence && matcher.form != .anyValue
                        && matcher.literal.utf8.count >= PathKeys.minimumLiteral
                })
            else { continue }
            var prefixes: [[UInt8]] = []
            var suffixes: [[UInt8]] = []
            for matcher in matchers {
                if matcher.form == .suffix {
                    suffixes.append(Array(matcher.literal.utf8))
                } else {
                    prefixes.append(Array(matcher.literal.utf8))
                }
            }
            return (name, prefixes, suffixes)
        }
        return nil
    }

    /// The ports an identity-wild rule requires, as bucket ids, or `nil` when it can match any port.
    ///
    /// Every `to` entry must hold a positive ports check with at least one port, all within
    /// 0...65535; a request to another port, or without one, fails that check. Port checks apply
    /// on TCP too, so TCP requests use this as well.
    static func ports(of rule: CompiledRule) -> [Int32]? {
        guard !rule.tos.isEmpty else { return nil }
        var ports: [Int32] = []
        for clause in rule.tos {
            let found = clause.first { check in
                guard check.attribute == .port, !check.negated, case .ports(let values) = check.matcher else {
                    return false
                }
                return !values.isEmpty && values.allSatisfy { RuleGroup.portID($0) >= 0 }
            }
            guard let found, case .ports(let values) = found.matcher else { return nil }
            ports += values.map(RuleGroup.portID)
        }
        return ports
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
}
