/// The per-request fast path: the same decision procedure as `run`, evaluated over the flat
/// `WorkloadProgram` with identity-indexed candidates, lazily computed request attributes and no
/// tracing. AUDIT policies cannot change a decision, so the fast path does not evaluate them.
extension ResolvedWorkload {
    /// Decides one request.
    func decide(_ request: AuthzRequest) -> Decision {
        let mode = peer.mode(port: request.destination.port)
        if mode == .strict && !request.source.isMTLS {
            return decided(.deny, 403, nil, nil, mode, .plaintextUnderStrict, [], [])
        }
        if request.isMalformed { return malformed(request, mode) }
        if Self.refusesTarget(request) { return decided(.deny, 404, nil, nil, mode, .relativePath, [], []) }
        if Self.rejectsPath(request) { return decided(.deny, 400, nil, nil, mode, .invalidPath, [], []) }
        // Without providers, or on TCP, request authentication is anonymous and skipped.
        let authn = providers.isEmpty || request.transport != .http
            ? nil : AuthnOutcome.evaluate(request, providers: providers)
        if let rejection = authn?.rejection {
            let status = rejection == .jwtAudienceNotAllowed ? 403 : 401
            return decided(.deny, status, nil, nil, mode, rejection, [], [])
        }
        if authnEditsReachPolicies, let authn, request.transport == .http {
            return decideRewritten(afterAuthentication(request, authn), mode, authn)
        }
        return decideAuthenticated(request, mode, authn)
    }

    /// `decideAuthenticated` for the few workloads whose policies read what the JWT filter
    /// changes, kept out of line so that the common path's code stays as small as it was.
    @inline(never)
    private func decideRewritten(_ request: AuthzRequest, _ mode: MTLSMode, _ authn: AuthnOutcome) -> Decision {
        decideAuthenticated(request, mode, authn)
    }

    /// CUSTOM, DENY and ALLOW for a request authentication has settled (and, where the policies
    /// read what it changes, rewritten: see `afterAuthentication`).
    @inline(__always)
    private func decideAuthenticated(_ request: AuthzRequest, _ mode: MTLSMode, _ authn: AuthnOutcome?) -> Decision {
        let visible = mode != .disable && request.source.isMTLS
        var facts = RequestFacts(
            isHTTP: request.transport == .http,
            principalVisible: visible && !(request.source.principal?.isEmpty ?? true),
            requestPrincipal: authn?.principal, requestIssuerLength: authn?.issuerLength ?? -1, claims: authn?.rawClaims,
            spaceDelimitedClaims: authn?.provider?.spaceDelimitedClaims)
        let program = self.program
        return program.withView { view in decideRules(program, request, mode, authn, &facts, view) }
    }

    /// CUSTOM, DENY and ALLOW over the program, once authentication has settled; the program's code
    /// is borrowed once for the whole decision.
    @inline(__always)
    private func decideRules(
        _ program: WorkloadProgram, _ request: AuthzRequest, _ mode: MTLSMode, _ authn: AuthnOutcome?,
        _ facts: inout RequestFacts, _ view: CodeView
    ) -> Decision {
        let shadow = program.hasDryRun ? program.shadowResults(request, &facts, view) : []
        // With the ext-authz provider allowing, a matching CUSTOM policy passes the request on.
        // The CUSTOM group is usually empty: a flag beside the others says so, and the group stays unread.
        if program.hasCustom, request.extAuthz != .allow || !conflictingCustomProviders.isEmpty,
            let position = program.firstMatch(program.custom, request, &facts, view)
        {
            if position == WorkloadProgram.undecided { return reference(request) }
            let rule = view.rule(Int(position))
            let cause: Decision.Cause =
                !conflictingCustomProviders.isEmpty
                ? .customProvidersConflict(conflictingCustomProviders)
                : request.extAuthz == .deny ? .customDenied : .customUnanswered
            return decided(
                .deny, 403, by: .program(program, rule.policy), Int(rule.index), mode, cause, shadow, [])
        }
        // DENY and ALLOW rules share one index, DENY rules first: the first rule that matches
        // decides, and it can be an ALLOW rule only when no DENY rule matched.
        let match = program.firstMatch(program.enforced, request, &facts, view)
        if match == WorkloadProgram.undecided { return reference(request) }
        if let position = match, position < program.allowStart {
            let rule = view.rule(Int(position))
            return decided(
                .deny, 403, by: .program(program, rule.policy), Int(rule.index), mode, .denyMatched, shadow, [])
        }
        guard program.hasAllow else {
            let edits = authn.map { $0.headerEdits(request.jwt, sanitizing: sanitizing) } ?? []
            return decided(.allow, 200, nil, nil, mode, .noAllowPolicy, shadow, edits)
        }
        if let position = match {
            let rule = view.rule(Int(position))
            let edits = authn.map { $0.headerEdits(request.jwt, sanitizing: sanitizing) } ?? []
            return decided(
                .allow, 200, by: .program(program, rule.policy), Int(rule.index), mode, .allowMatched, shadow,
                edits)
        }
        return decided(.deny, 403, nil, nil, mode, .noAllowMatched, shadow, [])
    }

    /// Decides by the reference evaluation, for the rare request the index cannot serve (see
    /// `WorkloadProgram.undecided`).
    @inline(never)
    private func reference(_ request: AuthzRequest) -> Decision {
        var trace = NoTrace()
        return run(request, &trace)
    }
}

extension WorkloadProgram {
    /// What `firstMatch` returns when the request's peer principal holds `/ns/` more than once and
    /// the group indexes rules by namespace: several namespaces may match it, the index looks up
    /// one, so the decision is left to the reference evaluation.
    static let undecided = Int32.min

    /// The header offset of the first rule of `group` that matches, in evaluation order, or
    /// `undecided`.
    @inline(__always)
    func firstMatch(_ group: RuleGroup, _ request: AuthzRequest, _ facts: inout RequestFacts, _ view: CodeView)
        -> Int32?
    {
        guard group.ruleCount > 0 else { return nil }
        // A request without a peer principal looks up the rules filed for such requests.
        let principal =
            group.byPrincipal.count == 0
            ? -1 : facts.principal(request) == nil ? RuleGroup.anonymous : facts.principalID(identities, request)
        let namespace = group.byNamespace.count == 0 ? -1 : facts.namespaceID(identities, request)
        if namespace == IdentityIDs.ambiguousNamespace { return Self.undecided }
        let method = group.byMethod.count == 0 || !facts.isHTTP ? -1 : facts.methodID(identities, request)
        let pathKeys = group.hasPathIndex && facts.isHTTP ? facts.pathKeys(group.pathKeys, request) : PathKeys.none
        let headerKeys =
            group.hasHeaderIndex && facts.isHTTP
            ? (
                facts.headerKeys(group.headers.0.keys, group.headers.0.slot, 0, headerNames, request),
                facts.headerKeys(group.headers.1.keys, group.headers.1.slot, 1, headerNames, request)
            ) : (PathKeys.none, PathKeys.none)
        let addresses = group.hasAddressIndex ? facts.addressIDs(request) : (source: -1, remote: -1)
        var cursor = group.candidates(
            principal: principal, namespace: namespace, method: method, port: request.destination.port,
            authenticated: facts.requestPrincipal != nil, pathKeys: pathKeys, headerKeys: headerKeys,
            addresses: addresses,
            isHTTP: facts.isHTTP, in: view.words)
        let dropHTTP = !facts.isHTTP
        while let position = cursor.next(view.words) {
            let rule = view.rule(Int(position))
            if dropHTTP {
                if rule.skipOnTCP { continue }
            } else if !admits(rule, request, &facts) {
                continue
            }
            if matches(rule, view, request, &facts, dropHTTP: dropHTTP) { return position }
        }
        return nil
    }

    /// Whether an HTTP request passes a rule's method and path filters (see `FlatRule`), read from
    /// its header, so a rule for other methods or paths costs no check.
    @inline(__always)
    private func admits(_ rule: FlatRule, _ request: AuthzRequest, _ facts: inout RequestFacts) -> Bool {
        if rule.methods != 0 {
            let method = facts.methodID(identities, request)
            guard method >= 0 && method < 32 && rule.methods & 1 << UInt32(method) != 0 else { return false }
        }
        if !rule.paths.isEmpty {
            return facts.withPath(request) { rule.paths.admits($0) } ?? false
        }
        return true
    }

    /// What each dry-run policy would have decided alone.
    func shadowResults(_ request: AuthzRequest, _ facts: inout RequestFacts, _ view: CodeView)
        -> [Decision.DryRunResult]
    {
        let dropHTTP = !facts.isHTTP
        return dryRun.map { index in
            let policy = policies[Int(index)]
            var matched: Int?
            for position in policy.rules.lower..<policy.rules.upper {
                let rule = view.rule(Int(ruleOffsets[position]))
                if dropHTTP && rule.skipOnTCP { continue }
                if matches(rule, view, request, &facts, dropHTTP: dropHTTP) {
                    matched = Int(rule.index)
                    break
                }
            }
            let wouldBe: Decision.Verdict = (policy.action == .deny) == (matched != nil) ? .deny : .allow
            return Decision.DryRunResult(policy: policy.name, action: policy.action, rule: matched, wouldBe: wouldBe)
        }
    }
}
