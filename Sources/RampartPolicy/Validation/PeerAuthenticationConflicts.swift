/// Finds PeerAuthentications that compete for the same scope, of which only one takes effect.
///
/// Istio uses one namespace-wide (or mesh-wide) PeerAuthentication per namespace and one
/// workload PeerAuthentication per workload; with several, the oldest wins: the one with the older
/// `metadata.creationTimestamp`, then the first by name (then namespace). The others are silently ignored.
enum PeerAuthenticationConflicts {
    /// Warnings for every PeerAuthentication that another one of the same scope shadows.
    static func analyze(_ resources: [SecurityResource], workloads: [Workload]?) -> [Diagnostic] {
        let policies = PeerAuthenticationResolver.ordered(resources.compactMap { resource -> PeerAuthentication? in
            if case .peerAuthentication(let policy) = resource { return policy }
            return nil
        })
        var diagnostics: [Diagnostic] = []
        var namespaceWide: [String: PeerAuthentication] = [:]
        for policy in policies where policy.selector?.matchLabels.isEmpty ?? true {
            if let first = namespaceWide[policy.metadata.namespace] {
                diagnostics.append(shadowed(policy, by: first, scope: "namespace-wide in \(policy.metadata.namespace)"))
            } else {
                namespaceWide[policy.metadata.namespace] = policy
            }
        }
        guard let workloads else { return diagnostics }
        for workload in workloads {
            let selecting = policies.filter { policy in
                guard let selector = policy.selector, !selector.matchLabels.isEmpty else { return false }
                return policy.metadata.namespace == workload.namespace && selector.matches(workload.labels)
            }
            guard let first = selecting.first else { continue }
            let labels = workload.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            for policy in selecting.dropFirst() {
                let diagnostic = shadowed(policy, by: first, scope: "for the workload {\(labels)} in \(workload.namespace)")
                if !diagnostics.contains(diagnostic) { diagnostics.append(diagnostic) }
            }
        }
        return diagnostics
    }

    private static func shadowed(_ policy: PeerAuthentication, by first: PeerAuthentication, scope: String) -> Diagnostic {
        var reporter = Reporter(resource: policy.id, location: policy.location)
        reporter.add(
            .conflictingPeerAuthentication, policy.selector == nil ? "metadata.name" : "spec.selector",
            "another PeerAuthentication, \(first.id.qualifiedName) (\(first.location.file == PolicyLoader.configStore ? "stored" : "\(first.location.file):\(first.location.line)")), is already \(scope); only one applies, and this one is ignored",
            fix: "merge the two into one PeerAuthentication (use portLevelMtls for per-port modes), or give this one a selector of its own")
        return reporter.diagnostics[0]
    }
}
