/// Everything resolved for one workload, held by reference so `WorkloadPolicies` copies cheaply:
/// the compiled policies by action (for `explain`), the JWT providers, the mTLS modes and the flat
/// `WorkloadProgram` the fast path evaluates.
final class ResolvedWorkload: Sendable {
    // The fast path reads the first four; they come first, to share the object's first cache line.
    let peer: PeerModes
    let providers: [JWTProvider]
    /// The flat form the fast path evaluates.
    let program: WorkloadProgram
    /// Whether request authentication can change a header the policies read (a token header it
    /// removes, a claim or payload header it writes or sanitizes): then authorization reads the
    /// headers as the JWT filter leaves them, as Envoy's RBAC filter does after jwt_authn.
    let authnEditsReachPolicies: Bool
    /// Removals of the headers the providers write, made on every HTTP request.
    let sanitizing: [HeaderEdit]
    let custom: [CompiledPolicy]
    let deny: [CompiledPolicy]
    let allow: [CompiledPolicy]
    let audit: [CompiledPolicy]
    let dryRun: [CompiledPolicy]
    /// The costlier request attributes these policies read (explain path).
    let needs: RequestNeeds
    /// The providers the CUSTOM policies name, when they name more than one: Istio then sends no
    /// request to any of them and denies what a CUSTOM rule matches.
    let conflictingCustomProviders: [String]

    init(policies: [CompiledPolicy], providers: [JWTProvider], peer: PeerModes, identities: IdentityIDs?) {
        let enforced = policies.filter { !$0.dryRun }
        custom = enforced.filter { $0.action == .custom }
        deny = enforced.filter { $0.action == .deny }
        allow = enforced.filter { $0.action == .allow }
        audit = enforced.filter { $0.action == .audit }
        dryRun = policies.filter(\.dryRun)
        self.providers = providers
        sanitizing = JWTProvider.sanitizing(providers)
        self.peer = peer
        needs = RequestNeeds(policies: policies)
        program = WorkloadProgram(policies: policies, identities: identities)
        authnEditsReachPolicies = Self.authnEditsReach(policies, providers)
        let named = Set(custom.compactMap(\.provider)).sorted()
        conflictingCustomProviders = named.count > 1 ? named : []
    }

    /// Whether some header a check reads is one a provider removes (its token header, unless the
    /// token is forwarded) or writes (payload and claim headers, sanitized on every request).
    private static func authnEditsReach(_ policies: [CompiledPolicy], _ providers: [JWTProvider]) -> Bool {
        guard !providers.isEmpty else { return false }
        var touched: Set<String> = []
        for provider in providers {
            touched.formUnion(provider.outputHeaders)
            if !provider.rule.forwardOriginalToken {
                for case .header(let name, _) in provider.locations { touched.insert(name) }
            }
        }
        for policy in policies {
            for rule in policy.rules {
                for check in Array(rule.froms.joined()) + Array(rule.tos.joined()) + rule.whens {
                    switch check.attribute {
                    case .header(let name), .inlineHeader(let name):
                        if touched.contains(name.lowercased()) { return true }
                    default: continue
                    }
                }
            }
        }
        return false
    }

    /// The request as the authorization filter sees it once the JWT filter has run: the token
    /// header removed, claim and payload headers written, headers the providers write sanitized.
    @inline(never)
    func afterAuthentication(_ request: AuthzRequest, _ authn: AuthnOutcome) -> AuthzRequest {
        request.applying(authn.headerEdits(request.jwt, sanitizing: sanitizing))
    }

    /// The 400 for a request Istio's proxies refuse before any policy (see `AuthzRequest.malformation`).
    @inline(never)
    func malformed(_ request: AuthzRequest, _ mode: MTLSMode) -> Decision {
        decided(.deny, 400, nil, nil, mode, .malformedRequest(request.malformation ?? "the request is malformed"), [], [])
    }

    /// Whether an HTTP request's path does not start with `/`, which Envoy's connection manager
    /// answers with 404 before normalization and before any filter. `OPTIONS *` and CONNECT, whose
    /// targets are not paths, are let through, as the proxy lets them through.
    @inline(__always)
    static func refusesTarget(_ request: AuthzRequest) -> Bool {
        guard request.transport == .http, let path = request.path, let first = path.utf8.first, first != UInt8(ascii: "/") else {
            return false
        }
        return !(path == "*" && request.method == "OPTIONS") && request.method != "CONNECT"
    }

    /// Whether an HTTP request's path is refused by the normalization before authorization (see
    /// `PathNormalizer.rejects`).
    @inline(__always)
    static func rejectsPath(_ request: AuthzRequest) -> Bool {
        guard request.transport == .http, let path = request.path else { return false }
        return PathNormalizer.rejects(path)
    }

    /// The enforced policies in the order Istio evaluates them, for `explain`.
    private var enforcedInOrder: [CompiledPolicy] { custom + audit + deny + allow }

    /// The straightforward evaluation over `CompiledPolicy` objects, reporting every step to `trace`;
    /// `explain` uses it, and tests compare the fast path against it.
    func run<T: Tracer>(_ request: AuthzRequest, _ trace: inout T) -> Decision {
        let mode = peer.mode(port: request.destination.port)
        trace.peer(peer, port: request.destination.port, mode: mode, plaintext: !request.source.isMTLS)
        if mode == .strict && !request.source.isMTLS {
            trace.refusedFirst(enforcedInOrder, "STRICT mTLS refused the plaintext connection first")
            return decided(.deny, 403, nil, nil, mode, .plaintextUnderStrict, [], [])
        }
        if request.isMalformed {
            trace.refusedFirst(enforcedInOrder, "the proxy refused the malformed request first (400)")
            return malformed(request, mode)
        }
        if Self.refusesTarget(request) {
            trace.refusedFirst(enforcedInOrder, "the proxy refused the path first: it does not start with / (404)")
            return decided(.deny, 404, nil, nil, mode, .relativePath, [], [])
        }
        if Self.rejectsPath(request) {
            trace.refusedFirst(enforcedInOrder, "the proxy refused the path first (400)")
            return decided(.deny, 400, nil, nil, mode, .invalidPath, [], [])
        }
        let authn = AuthnOutcome.evaluate(request, providers: providers)
        trace.authn(providers, authn, token: request.jwt)
        if let rejection = authn.rejection {
            let status = rejection == .jwtAudienceNotAllowed ? 403 : 401
            trace.refusedFirst(enforcedInOrder, "request authentication refused the request first (\(status))")
            return decided(.deny, status, nil, nil, mode, rejection, [], [])
        }
        let request = authnEditsReachPolicies && request.transport == .http ? afterAuthentication(request, authn) : request
        let prepared = PreparedRequest(request, peerIdentityVisible: mode != .disable, authn: authn, needs: needs)
        let shadow = dryRun.isEmpty ? [] : shadowResults(prepared, &trace)
        for policy in custom {
            guard let rule = policy.firstMatch(prepared) else {
                trace.policy(policy, nil, prepared)
                continue
            }
            trace.policy(policy, rule, prepared)
            if !conflictingCustomProviders.isEmpty {
                return decided(.deny, 403, policy.name, rule, mode, .customProvidersConflict(conflictingCustomProviders), shadow, [])
            }
            switch request.extAuthz {
            case .allow?: continue
            case .deny?:
                trace.notReached(custom, after: policy, "denied")
                trace.notReached(audit + deny + allow, after: policy, "denied")
                return decided(.deny, 403, policy.name, rule, mode, .customDenied, shadow, [])
            case nil:
                trace.notReached(custom, after: policy, "denied")
                trace.notReached(audit + deny + allow, after: policy, "denied")
                return decided(.deny, 403, policy.name, rule, mode, .customUnanswered, shadow, [])
            }
        }
        // AUDIT comes before DENY, as Istio orders its filters: a denied request is audited too.
        _ = firstMatching(audit, prepared, &trace, stop: false)
        if let (policy, rule) = firstMatching(deny, prepared, &trace, stop: true) {
            trace.notReached(deny, after: policy, "denied")
            trace.notReached(allow, after: policy, "denied")
            return decided(.deny, 403, policy.name, rule, mode, .denyMatched, shadow, [])
        }
        let edits = request.transport == .http ? authn.headerEdits(request.jwt, sanitizing: sanitizing) : []
        if allow.isEmpty {
            return decided(.allow, 200, nil, nil, mode, .noAllowPolicy, shadow, edits)
        }
        if let (policy, rule) = firstMatching(allow, prepared, &trace, stop: true) {
            trace.notReached(allow, after: policy, "allowed")
            return decided(.allow, 200, policy.name, rule, mode, .allowMatched, shadow, edits)
        }
        return decided(.deny, 403, nil, nil, mode, .noAllowMatched, shadow, [])
    }

    /// The first CUSTOM policy and rule that match the request, whatever its ext-authz answer (for
    /// explanations: an allowed request that a CUSTOM policy sent to its provider).
    func firstCustomMatch(_ request: AuthzRequest) -> (policy: String, rule: Int)? {
        guard !custom.isEmpty else { return nil }
        let mode = peer.mode(port: request.destination.port)
        let authn = AuthnOutcome.evaluate(request, providers: providers)
        guard authn.rejection == nil else { return nil }
        let request = authnEditsReachPolicies && request.transport == .http ? afterAuthentication(request, authn) : request
        let prepared = PreparedRequest(request, peerIdentityVisible: mode != .disable, authn: authn, needs: needs)
        for policy in custom {
            if let rule = policy.firstMatch(prepared) { return (policy.name, rule) }
        }
        return nil
    }

    /// Evaluates policies in order, tracing each, and returns the first that matches with its rule;
    /// without `stop` every policy is evaluated (AUDIT). Policies are borrowed in place, not retained.
    @inline(__always)
    private func firstMatching<T: Tracer>(
        _ policies: [CompiledPolicy], _ prepared: PreparedRequest, _ trace: inout T, stop: Bool
    ) -> (CompiledPolicy, Int)? {
        policies.withUnsafeBufferPointer { policies in
            var first: (CompiledPolicy, Int)?
            for index in policies.indices {
                let rule = policies[index].firstMatch(prepared)
                trace.policy(policies[index], rule, prepared)
                if let rule, first == nil {
                    first = (policies[index], rule)
                    if stop { break }
                }
            }
            return first
        }
    }

    private func shadowResults<T: Tracer>(_ request: PreparedRequest, _ trace: inout T) -> [Decision.DryRunResult] {
        dryRun.map { policy in
            let rule = policy.firstMatch(request)
            trace.policy(policy, rule, request)
            let wouldBe: Decision.Verdict = (policy.action == .deny) == (rule != nil) ? .deny : .allow
            return Decision.DryRunResult(policy: policy.name, action: policy.action, rule: rule, wouldBe: wouldBe)
        }
    }

    @inline(__always)
    func decided(
        _ verdict: Decision.Verdict, _ status: Int, _ policy: String?, _ rule: Int?, _ mode: MTLSMode,
        _ cause: Decision.Cause, _ shadow: [Decision.DryRunResult], _ edits: [HeaderEdit]
    ) -> Decision {
        decided(verdict, status, by: policy.map(Decision.DecidingPolicy.name), rule, mode, cause, shadow, edits)
    }

    /// A decision whose deciding policy is named by `deciding`.
    @inline(__always)
    func decided(
        _ verdict: Decision.Verdict, _ status: Int, by deciding: Decision.DecidingPolicy?, _ rule: Int?,
        _ mode: MTLSMode, _ cause: Decision.Cause, _ shadow: [Decision.DryRunResult], _ edits: [HeaderEdit]
    ) -> Decision {
        Decision(
            decision: verdict, status: status, deciding: deciding, rule: rule, mtlsMode: mode, cause: cause,
            dryRun: shadow, headerEdits: edits)
    }
}
