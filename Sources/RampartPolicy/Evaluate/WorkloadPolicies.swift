/// Everything that applies to one workload, resolved from a snapshot: the evaluator's hot path.
///
/// A proxy resolves this once per workload and calls `evaluate` per request; evaluation is pure,
/// synchronous and touches only the policies selected for the workload.
public struct WorkloadPolicies: Sendable {
    let resolved: ResolvedWorkload

    init(policies: [CompiledPolicy], providers: [JWTProvider], peer: PeerModes, identities: IdentityIDs? = nil) {
        resolved = ResolvedWorkload(policies: policies, providers: providers, peer: peer, identities: identities)
    }

    /// The JWT providers that apply.
    public var providers: [JWTProvider] { resolved.providers }
    /// The resolved mTLS modes.
    public var peer: PeerModes { resolved.peer }

    /// Whether deciding may read the request's headers: some policy (enforced, dry-run or audit)
    /// has a `request.headers[...]` condition, or a JWT provider applies (tokens and CORS
    /// preflights are found in headers). When false, a caller may leave `AuthzRequest.headers`
    /// empty and get the same decision.
    public var readsHeaders: Bool { !resolved.providers.isEmpty || resolved.needs.contains(.headers) }

    /// The number of authorization policies that apply (enforced and dry-run).
    public var policyCount: Int {
        resolved.custom.count + resolved.deny.count + resolved.allow.count + resolved.audit.count
            + resolved.dryRun.count
    }

    /// Decides one request on the fast path (the flat program, no tracing, no allocation in the
    /// common case); decides exactly as `explain` does.
    public func evaluate(_ request: AuthzRequest) -> Decision {
        resolved.decide(request)
    }

    /// Decides one request and records every policy and rule considered.
    public func explain(_ request: AuthzRequest) -> (decision: Decision, trace: ExplainTrace) {
        var trace = RecordingTrace()
        let decision = resolved.run(request, &trace)
        return (decision, ExplainTrace(steps: trace.steps))
    }

    /// Decides one request by the straightforward evaluation `explain` uses, without recording.
    func evaluateReference(_ request: AuthzRequest) -> Decision {
        var trace = NoTrace()
        return resolved.run(request, &trace)
    }
}

