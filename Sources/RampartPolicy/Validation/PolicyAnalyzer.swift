/// A workload known to the mesh, for the analyzer's "selects nothing" check.
public struct Workload: Sendable, Hashable {
    /// Its namespace.
    public let namespace: String
    /// Its labels.
    public let labels: [String: String]

    /// Creates a workload.
    public init(namespace: String, labels: [String: String]) {
        self.namespace = namespace
        self.labels = labels
    }
}

/// Validation and analysis of security resources: webhook-style errors plus warnings for policies
/// that will not do what they appear to.
public enum PolicyAnalyzer {
    /// Webhook validation of each resource.
    public static func validate(_ resources: [SecurityResource]) -> [Diagnostic] {
        resources.flatMap { resource -> [Diagnostic] in
            switch resource {
            case .authorizationPolicy(let policy): return AuthorizationPolicyValidator.validate(policy)
            case .peerAuthentication(let policy): return PeerAuthenticationValidator.validate(policy)
            case .requestAuthentication(let policy): return RequestAuthenticationValidator.validate(policy)
            }
        }
    }

    /// Validation plus analysis; `workloads`, when given, enables the selector check.
    public static func analyze(
        _ resources: [SecurityResource], workloads: [Workload]? = nil, rootNamespace: String = "istio-system"
    ) -> [Diagnostic] {
        var diagnostics = validate(resources)
        for resource in resources {
            if case .authorizationPolicy(let policy) = resource { diagnostics += denyOnTCP(policy) }
            if let workloads { diagnostics += selectsNothing(resource, workloads, rootNamespace: rootNamespace) }
        }
        diagnostics += PeerAuthenticationConflicts.analyze(resources, workloads: workloads)
        return diagnostics
    }

    /// A DENY rule whose conditions are all HTTP-only becomes "deny everything" on TCP ports.
    static func denyOnTCP(_ policy: AuthorizationPolicy) -> [Diagnostic] {
        guard policy.action == .deny else { return [] }
        var reporter = Reporter(resource: policy.id, location: policy.location)
        for (index, rule) in (policy.rules ?? []).enumerated() {
            let compiled = CompiledPolicy.compile(rule, index: index, namespace: policy.id.namespace)
            guard compiled.hasHTTPOnly else { continue }
            let tcpOpen: ([Check]) -> Bool = { $0.allSatisfy(\.attribute.isHTTPOnly) }
            let fromOpen = compiled.froms.isEmpty || compiled.froms.contains(where: tcpOpen)
            let toOpen = compiled.tos.isEmpty || compiled.tos.contains(where: tcpOpen)
            if fromOpen && toOpen && tcpOpen(compiled.whens) {
                reporter.add(
                    .denyAllOnTCP, "spec.rules[\(index)]",
                    "this DENY rule only uses HTTP attributes; on TCP ports they are ignored and the rule denies every connection",
                    fix: "add ports (to.operation.ports) to limit the rule to the HTTP ports it is meant for")
            }
        }
        return reporter.diagnostics
    }

    static func selectsNothing(_ resource: SecurityResource, _ workloads: [Workload], rootNamespace: String)
        -> [Diagnostic]
    {
        let selector: WorkloadSelector?
        switch resource {
        case .authorizationPolicy(let policy): selector = policy.selector
        case .peerAuthentication(let policy): selector = policy.selector
        case .requestAuthentication(let policy): selector = policy.selector
        }
        guard let selector, !selector.matchLabels.isEmpty else { return [] }
        let namespace = resource.id.namespace
        let inScope = workloads.filter { namespace == rootNamespace || $0.namespace == namespace }
        guard !inScope.contains(where: { selector.matches($0.labels) }) else { return [] }
        var reporter = Reporter(resource: resource.id, location: resource.location)
        let labels = selector.matchLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        reporter.add(
            .selectsNothing, "spec.selector.matchLabels",
            "no known workload\(namespace == rootNamespace ? "" : " in namespace \(namespace)") has the labels \(labels.joined(separator: ", ")), so the policy applies to nothing",
            fix: "correct the labels to those of the intended workload")
        return reporter.diagnostics
    }
}
