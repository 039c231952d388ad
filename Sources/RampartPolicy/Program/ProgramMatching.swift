/// Rule and check evaluation over a program's flat tables.
extension WorkloadProgram {
    /// Whether a rule matches; `dropHTTP` skips HTTP-only checks (TCP), as `CompiledRule.matches` does.
    @inline(__always)
    func matches(_ rule: FlatRule, _ request: AuthzRequest, _ facts: inout RequestFacts, dropHTTP: Bool) -> Bool {
        if rule.froms.count > 0 && !anyClause(rule.froms, request, &facts, dropHTTP) { return false }
        if rule.tos.count > 0 && !anyClause(rule.tos, request, &facts, dropHTTP) { return false }
        return all(rule.whens, request, &facts, dropHTTP)
    }

    /// Whether one of the clause entries starting at `entries.start` matches.
    @inline(__always)
    private func anyClause(_ entries: PoolRange, _ request: AuthzRequest, _ facts: inout RequestFacts, _ dropHTTP: Bool)
        -> Bool
    {
        for index in 0..<Int(entries.count)
        where all(code.clause(entries.lower + ProgramCode.clauseWords * index), request, &facts, dropHTTP) {
            return true
        }
        return false
    }

    @inline(__always)
    private func all(_ range: PoolRange, _ request: AuthzRequest, _ facts: inout RequestFacts, _ dropHTTP: Bool) -> Bool {
        for index in 0..<Int(range.count) {
            let check = code.check(range.lower + ProgramCode.checkWords * index)
            if dropHTTP && check.httpOnly { continue }
            if matches(check, request, &facts) == check.negated { return false }
        }
        return true
    }

    /// Whether the attribute matches one of the check's values (before negation), as `Check` decides.
    private func matches(_ check: FlatCheck, _ request: AuthzRequest, _ facts: inout RequestFacts) -> Bool {
        let range = check.start..<(check.start + check.count)
        switch check.kind {
        case .never:
            return false
        case .port:
            guard let port = request.destination.port else { return false }
            for index in 0..<Int(check.count) where code.port(Int(check.start), index) == port { return true }
            return false
        case .method: return anyString(request.method, range)
        case .principal: return anyString(facts.principal, range)
        case .namespace: return anyString(facts.namespace(request), range)
        case .requestPrincipal: return anyString(facts.requestPrincipal, range)
        case .sni: return anyString(request.sni, range)
        case .host: return anyString(facts.host(request), range)
        case .serviceAccount: return anyString(facts.serviceAccount(), range)
        case .header: return anyString(request.headers[headerNames[Int(check.slot)]], range)
        case .sourceIP, .remoteIP, .destinationIP:
            guard let address = facts.address(check.kind, request) else { return false }
            for index in 0..<Int(check.count) where code.block(Int(check.start), index, contains: address) { return true }
            return false
        case .path:
            guard let path = facts.path(request) else { return false }
            for index in range where values[Int(index)].matches(path) { return true }
            return false
        case .claim: return anyClaim(facts.claim(claimPaths[Int(check.slot)]), range)
        case .audiences: return anyClaim(facts.member("aud"), range)
        case .presenter: return anyClaim(facts.member("azp"), range)
        }
    }

    @inline(__always)
    private func anyString(_ value: String?, _ range: Range<Int32>) -> Bool {
        guard let value else { return false }
        for index in range where values[Int(index)].matches(value) { return true }
        return false
    }

    private func anyClaim(_ value: ClaimValue?, _ range: Range<Int32>) -> Bool {
        switch value {
        case .string(let string)?: return anyString(string, range)
        case .array(let items)?:
            for case .string(let string) in items where anyString(string, range) { return true }
            return false
        default: return false
        }
    }
}
