/// Rule and check evaluation over a program's flat tables, read through a `CodeView`.
extension WorkloadProgram {
    /// Whether a rule matches; `dropHTTP` skips HTTP-only checks (TCP), as `CompiledRule.matches` does.
    @inline(__always)
    func matches(
        _ rule: FlatRule, _ view: CodeView, _ request: AuthzRequest, _ facts: inout RequestFacts, dropHTTP: Bool
    ) -> Bool {
        // A rule without entries is one ANDed list (see `WorkloadProgramBuilder.append`).
        if rule.froms.count == 0 && rule.tos.count == 0 { return all(rule.whens, view, request, &facts, dropHTTP) }
        var order = rule.order
        for _ in 0..<3 {
            switch order & 3 {
            case 0: if rule.froms.count > 0 && !anyClause(rule.froms, view, request, &facts, dropHTTP) { return false }
            case 1: if rule.tos.count > 0 && !anyClause(rule.tos, view, request, &facts, dropHTTP) { return false }
            default: if !all(rule.whens, view, request, &facts, dropHTTP) { return false }
            }
            order >>= 2
        }
        return true
    }

    /// Whether one of the clause entries starting at `entries.start` matches.
    @inline(__always)
    private func anyClause(
        _ entries: PoolRange, _ view: CodeView, _ request: AuthzRequest, _ facts: inout RequestFacts, _ dropHTTP: Bool
    ) -> Bool {
        for index in 0..<Int(entries.count)
        where all(view.clause(entries.lower + ProgramCode.clauseWords * index), view, request, &facts, dropHTTP) {
            return true
        }
        return false
    }

    @inline(__always)
    private func all(
        _ range: PoolRange, _ view: CodeView, _ request: AuthzRequest, _ facts: inout RequestFacts, _ dropHTTP: Bool
    ) -> Bool {
        for index in 0..<Int(range.count) {
            let check = view.check(range.lower + ProgramCode.checkWords * index)
            if dropHTTP && check.httpOnly { continue }
            if matches(check, view, request, &facts) == check.negated { return false }
        }
        return true
    }

    /// Whether the attribute matches one of the check's values (before negation), as `Check` decides.
    private func matches(_ check: FlatCheck, _ view: CodeView, _ request: AuthzRequest, _ facts: inout RequestFacts)
        -> Bool
    {
        switch check.kind {
        case .never:
            return false
        case .port:
            guard let port = request.destination.port else { return false }
            for index in 0..<Int(check.count) where view.port(Int(check.start), index) == port { return true }
            return false
        case .method: return anyPattern(request.method, check, view)
        case .principal: return anyPattern(facts.principal(request), check, view)
        case .namespace:
            let values = namespaceChecks[Int(check.slot)]
            switch facts.namespaceSegment(request) {
            case .none where !values.hasRegex:
                // Every value's regex needs `/ns/` and a later slash.
                return false
            case .one where values.anySegment:
                return true
            case .one where values.bySegment:
                // The segment is compared where it lies in the principal, without a copy.
                return facts.withNamespaceBytes(request) { anyPattern($0, check, view) } ?? false
            default:
                guard let principal = facts.principal(request) else { return false }
                return values.patterns.contains { $0.matches(principal: principal) }
            }
        case .requestPrincipal:
            // Two entries per value: the issuer's pattern, then the subject's.
            return facts.withToken { issuer, subject in
                for index in 0..<Int(check.count)
                where anyPattern(issuer, check.entry(2 * index), view)
                    && anyPattern(subject, check.entry(2 * index + 1), view)
                {
                    return true
                }
                return false
            } ?? false
        case .sni: return anyPattern(request.sni, check, view)
        case .host: return anyPattern(facts.host(request), check, view)
        case .serviceAccount:
            let regexes = accountRegexes[Int(check.slot)]
            if !regexes.isEmpty, let principal = facts.principal(request), regexes.contains(where: { $0.matches(accountOf: principal) }) {
                return true
            }
            if let account = facts.serviceAccount(request) { return anyPattern(account, check, view) }
            // A principal of another shape is matched with Istio's regex (see ServiceAccountPattern).
            guard let principal = facts.principal(request) else { return false }
            return accountPatterns[Int(check.slot)].contains { $0.matches(principal: principal) }
        case .trustDomain:
            // The trust domain is compared where it lies in the principal, without a copy.
            guard let principal = facts.principal(request) else { return false }
            if let found = principal.utf8.withContiguousStorageIfAvailable({ bytes -> Bool in
                let end = bytes.firstIndex(of: UInt8(ascii: "/")) ?? bytes.count
                return anyPattern(UnsafeBufferPointer(rebasing: bytes[..<end]), check, view)
            }) {
                return found
            }
            return anyPattern(String(PreparedRequest.trustDomain(of: principal)), check, view)
        case .header: return anyPattern(facts.header(check.slot, headerNames, request), check, view)
        case .inlineHeader:
            guard let value = facts.header(check.slot, headerNames, request) else { return false }
            if let found = value.utf8.withContiguousStorageIfAvailable({ anyListed($0, check, view) }) { return found }
            return Array(value.utf8).withUnsafeBufferPointer { anyListed($0, check, view) }
        case .path: return facts.withPath(request) { anyPattern($0, check, view) } ?? false
        case .sourceIP, .remoteIP, .destinationIP:
            guard let address = facts.address(check.kind, request) else { return false }
            for index in 0..<Int(check.count) where view.block(Int(check.start), index, contains: address) { return true }
            return false
        case .claim: return anyClaim(facts.claim(claimPaths[Int(check.slot)]), check, view)
        case .audiences: return anyClaim(facts.member("aud"), check, view)
        case .presenter: return anyClaim(facts.member("azp"), check, view)
        }
    }

    /// Whether one of the check's patterns is found in the comma-separated list `value` as
    /// Istio's inline header regex finds it (`^v$|^v,.*|.*,v,.*|.*,v$`, with `.*` for the `*` of
    /// a prefix or suffix pattern): an exact value spans whole elements, a prefix starts where an
    /// element starts, a suffix ends where one ends. Elements are not trimmed, and a pattern may
    /// hold commas itself (`a,b` is found in `z,a,b`).
    private func anyListed(_ value: UnsafeBufferPointer<UInt8>, _ check: FlatCheck, _ view: CodeView) -> Bool {
        let comma = UInt8(ascii: ",")
        // Without a comma the list is one element, which each pattern is matched against whole.
        guard value.contains(comma) else { return anyPattern(value, check, view) }
        var starts = [0], ends: [Int] = []
        for index in value.indices where value[index] == comma {
            ends.append(index)
            starts.append(index + 1)
        }
        ends.append(value.count)
        for index in 0..<Int(check.count) {
            let one = check.entry(index)
            let head = view.words[Int(one.start)]
            let length = Int(head >> 8)
            switch ProgramCode.PatternForm(rawValue: head & 0xff) {
            case .exact?:
                for start in starts where start + length <= value.count && (start + length == value.count || value[start + length] == comma) {
                    if anyPattern(UnsafeBufferPointer(rebasing: value[start..<start + length]), one, view) { return true }
                }
            case .prefix?:
                for start in starts where anyPattern(UnsafeBufferPointer(rebasing: value[start...]), one, view) { return true }
            case .suffix?:
                for end in ends where anyPattern(UnsafeBufferPointer(rebasing: value[..<end]), one, view) { return true }
            default:
                if anyPattern(value, one, view) { return true }
            }
        }
        return false
    }

    /// Whether the value matches one of the check's patterns, compared as UTF-8 bytes.
    @inline(__always)
    private func anyPattern(_ value: String?, _ check: FlatCheck, _ view: CodeView) -> Bool {
        guard let value else { return false }
        if let found = value.utf8.withContiguousStorageIfAvailable({ anyPattern($0, check, view) }) { return found }
        return Array(value.utf8).withUnsafeBufferPointer { anyPattern($0, check, view) }
    }

    /// Walks the check's pattern entries (see `ProgramCode.appendPatterns`).
    private func anyPattern(_ value: UnsafeBufferPointer<UInt8>, _ check: FlatCheck, _ view: CodeView) -> Bool {
        var at = Int(check.start)
        for _ in 0..<Int(check.count) {
            let head = view.words[at]
            let argument = Int(view.words[at + 1])
            let probe = UInt64(view.words[at + 2]) | UInt64(view.words[at + 3]) << 32
            at += ProgramCode.patternWords
            let length = Int(head >> 8)
            // The probe holds up to eight of the literal's bytes (see `ProgramCode.probeRange`);
            // only the bytes it leaves out are compared one by one.
            let width = min(8, length)
            switch ProgramCode.PatternForm(rawValue: head & 0xff) {
            case .exact?:
                if value.count == length && CodeView.word(value, from: length - width, count: width) == probe
                    && view.equal(value, 0, argument, length - width)
                {
                    return true
                }
            case .prefix?:
                if value.count >= length && CodeView.word(value, from: 0, count: width) == probe
                    && view.equal(value, width, argument + width, length - width)
                {
                    return true
                }
            case .suffix?:
                if value.count >= length && CodeView.word(value, from: value.count - width, count: width) == probe
                    && view.equal(value, value.count - length, argument, length - width)
                {
                    return true
                }
            case .presence?:
                if !value.isEmpty { return true }
            case .anyValue?:
                return true
            case .dottedExact?:
                if value.count == length && view.dotted(value, 0, argument, length) { return true }
            case .dottedSuffix?:
                if value.count >= length && view.dotted(value, value.count - length, argument, length) { return true }
            case .template?:
                if templates[argument].matches(bytes: value) { return true }
            case .regex?:
                if argument < regexes.count && regexes[argument].matches(bytes: value) { return true }
            case nil:
                continue
            }
        }
        return false
    }

    private func anyClaim(_ value: ClaimValue?, _ check: FlatCheck, _ view: CodeView) -> Bool {
        switch value {
        case .string(let string)?: return anyPattern(string, check, view)
        case .array(let items)?:
            for case .string(let string) in items where anyPattern(string, check, view) { return true }
            return false
        default: return false
        }
    }
}
