/// Options for compiling a snapshot.
public struct SnapshotOptions: Sendable, Hashable {
    /// The mesh root namespace: its policies apply mesh-wide.
    public let rootNamespace: String
    /// What is known about fetching JWKS documents.
    public let jwks: JWKSEnvironment
    /// The mesh's trust domain and aliases, which `cluster.local` in principals stands for.
    public let trustDomains: TrustDomainBundle

    /// Creates options; the root namespace defaults to `istio-system` and the trust domain to
    /// `cluster.local`.
    public init(
        rootNamespace: String = "istio-system", jwks: JWKSEnvironment = JWKSEnvironment(),
        trustDomains: TrustDomainBundle = TrustDomainBundle()
    ) {
        self.rootNamespace = rootNamespace
        self.jwks = jwks
        self.trustDomains = trustDomains
    }
}

/// An immutable, indexed compilation of security resources, ready to evaluate requests.
///
/// Per-request work depends only on the policies that apply to the destination workload: lookups go
/// through a namespace and label index, and every matcher is compiled ahead of time.
public struct PolicySnapshot: Sendable {
    /// The options it was compiled with.
    public let options: SnapshotOptions
    let authorization: ScopeIndex<CompiledPolicy>
    /// Every AuthorizationPolicy with its scope, in load order, so that `explain` can say why the
    /// ones of the destination's namespace that do not apply do not.
    let scopedAuthorization: [Scoped<CompiledPolicy>]
    let requestAuthentication: ScopeIndex<[JWTProvider]>
    let peerAuthentications: [String: [(policy: PeerAuthentication, order: Int)]]
    /// The policies of destinations already evaluated.
    let cache: WorkloadCache
    /// Ids of the exact principals and namespaces rules require, shared by the workload programs.
    let identities: IdentityIDs

    /// Compiles resources; invalid ones should be filtered out with `PolicyAnalyzer` first.
    public init(resources: [SecurityResource], options: SnapshotOptions = SnapshotOptions()) {
        self.options = options
        var authz: [Scoped<CompiledPolicy>] = []
        var authn: [Scoped<[JWTProvider]>] = []
        var peers: [String: [(policy: PeerAuthentication, order: Int)]] = [:]
        for (order, resource) in resources.enumerated() {
            switch resource {
            case .authorizationPolicy(let policy):
                let scope = ScopeIndex<CompiledPolicy>.attachment(
                    namespace: policy.metadata.namespace, selector: policy.selector, targetRef: policy.targetRef,
                    targetRefs: policy.targetRefs)
                authz.append(
                    Scoped(
                        value: CompiledPolicy(policy, order: order, trustDomains: options.trustDomains), namespace: policy.metadata.namespace,
                        selectors: scope.selectors, order: order, namespaceBound: scope.namespaceBound))
            case .requestAuthentication(let policy):
                let providers = policy.jwtRules.enumerated().map {
                    JWTProvider(
                        policy: policy.id.qualifiedName, ruleIndex: $0.offset, rule: $0.element,
                        environment: options.jwks)
                }
                let scope = ScopeIndex<[JWTProvider]>.attachment(
                    namespace: policy.metadata.namespace, selector: policy.selector, targetRef: policy.targetRef,
                    targetRefs: policy.targetRefs)
                authn.append(
                    Scoped(
                        value: providers, namespace: policy.metadata.namespace, selectors: scope.selectors, order: order,
                        namespaceBound: scope.namespaceBound))
            case .peerAuthentication(let policy):
                peers[policy.metadata.namespace, default: []].append((policy, order))
            }
        }
        authorization = ScopeIndex(rootNamespace: options.rootNamespace, entries: authz)
        scopedAuthorization = authz
        identities = IdentityIDs(policies: authz.map(\.value))
        requestAuthentication = ScopeIndex(rootNamespace: options.rootNamespace, entries: authn)
        peerAuthentications = peers
        var selectors = (authz.map(\.selectors) + authn.map(\.selectors)).flatMap { $0 ?? [] }
        selectors += peers.values.joined().compactMap(\.policy.selector)
        cache = WorkloadCache(keys: Set(selectors.flatMap(\.matchLabels.keys)).sorted(), readsGateway: !peers.isEmpty)
    }

    /// Everything that applies to one workload, resolved once; hold it for the workload's lifetime.
    public func workload(namespace: String, labels: [String: String]) -> WorkloadPolicies {
        WorkloadPolicies(
            policies: authorization.applicable(namespace: namespace, labels: labels),
            providers: jwtProviders(namespace: namespace, labels: labels),
            peer: PeerAuthenticationResolver.resolve(
                peerAuthentications, rootNamespace: options.rootNamespace, namespace: namespace, labels: labels),
            identities: identities)
    }

    /// The JWT providers RampartAuthn must verify tokens against for a workload.
    /// They come in the order Istio gives them to Envoy (`JWTProvider.istioOrder`), the order in
    /// which a token is tried against them.
    public func jwtProviders(namespace: String, labels: [String: String]) -> [JWTProvider] {
        JWTProvider.istioOrder(requestAuthentication.applicable(namespace: namespace, labels: labels).flatMap { $0 })
    }

    /// How many RequestAuthentications apply to a workload, counting those with no `jwtRules`
    /// (which check no token).
    public func requestAuthenticationCount(namespace: String, labels: [String: String]) -> Int {
        requestAuthentication.applicable(namespace: namespace, labels: labels).count
    }

    /// The first CUSTOM policy (`namespace/name`) and rule that match the request, whatever its
    /// ext-authz answer.
    public func customMatch(_ request: AuthzRequest) -> (policy: String, rule: Int)? {
        cachedWorkload(request.destination).resolved.firstCustomMatch(request)
    }

    /// The destination's policies through the cache of destinations already seen.
    @inline(__always)
    func cachedWorkload(_ destination: AuthzRequest.Destination) -> WorkloadPolicies {
        cache.policies(namespace: destination.namespace, labels: destination.labels) {
            workload(namespace: $0, labels: $1)
        }
    }

    /// The mTLS modes in force at a destination, with the PeerAuthentications they come from.
    public func peerModes(for destination: AuthzRequest.Destination) -> PeerModes {
        cachedWorkload(destination).peer
    }

    /// Evaluates one request: finds the destination's policies (cached per namespace and selected
    /// labels, see `WorkloadCache`) and decides.
    public func evaluate(_ request: AuthzRequest) -> Decision {
        cachedWorkload(request.destination).evaluate(request)
    }

    /// Evaluates one request and records why, ending with the policies of the destination's
    /// namespace (and the root namespace) that do not apply to it, and why not: the question
    /// "why did my policy not apply?" is often the one asked.
    public func explain(_ request: AuthzRequest) -> (decision: Decision, trace: ExplainTrace) {
        let destination = request.destination
        let (decision, trace) = cachedWorkload(destination).explain(request)
        let applied = Set(
            authorization.applicable(namespace: destination.namespace, labels: destination.labels).map(\.name))
        let skipped = scopedAuthorization.filter { entry in
            (entry.namespace == destination.namespace || entry.namespace == options.rootNamespace)
                && !applied.contains(entry.value.name)
        }.map { entry -> ExplainTrace.PolicyStep in
            let reason: String
            if let selectors = entry.selectors, selectors.isEmpty {
                reason = "not applied: its targetRefs attach it to a waypoint, a class of gateways or a gateway of another namespace, not to a workload"
            } else if entry.namespaceBound && entry.namespace != destination.namespace {
                reason = "not applied: its targetRefs attach it only to gateways of its own namespace, \(entry.namespace), even in the root namespace"
            } else {
                let wanted = (entry.selectors ?? []).map { WorkloadSelector.text($0.matchLabels) }.joined(separator: " or ")
                reason = "not applied: it selects \(wanted), and the workload's labels are \(WorkloadSelector.text(destination.labels))"
            }
            return ExplainTrace.PolicyStep(
                policy: entry.value.name, kind: entry.value.action.rawValue, dryRun: entry.value.dryRun, notes: [reason],
                outcome: .notApplied)
        }
        return (decision, ExplainTrace(steps: trace.steps + skipped))
    }
}
