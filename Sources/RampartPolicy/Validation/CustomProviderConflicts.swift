/// Finds CUSTOM policies that name different ext-authz providers for the same workloads. Istio
/// takes one provider per workload; with several, it asks none of them and turns every CUSTOM
/// rule of the workload into a denial.
enum CustomProviderConflicts {
    static func analyze(_ resources: [SecurityResource], workloads: [Workload]?, rootNamespace: String) -> [Diagnostic] {
        let custom = resources.compactMap { resource -> AuthorizationPolicy? in
            guard case .authorizationPolicy(let policy) = resource, policy.action == .custom,
                !(policy.dryRunValue.flatMap(GoBool.parse) ?? false),
                let provider = policy.provider, !provider.isEmpty
            else { return nil }
            return policy
        }
        guard Set(custom.compactMap(\.provider)).count > 1 else { return [] }
        var diagnostics: [Diagnostic] = []
        var reported: Set<ResourceID> = []
        for (index, policy) in custom.enumerated() {
            for earlier in custom[..<index] where earlier.provider != policy.provider && !reported.contains(policy.id) {
                guard let scope = sharedScope(earlier, policy, workloads: workloads, rootNamespace: rootNamespace) else { continue }
                var reporter = Reporter(resource: policy.id, location: policy.location)
                reporter.add(
                    .customProviderConflict, "spec.provider.name",
                    "this CUSTOM policy names provider \(policy.provider ?? ""), and \(earlier.id.qualifiedName) (\(earlier.location.file):\(earlier.location.line)) names \(earlier.provider ?? "") for \(scope): Istio takes one provider per workload, so neither is asked and every request a CUSTOM rule matches there is denied",
                    fix: "send a workload's CUSTOM policies to one ext-authz provider")
                diagnostics += reporter.diagnostics
                reported.insert(policy.id)
            }
        }
        return diagnostics
    }

    /// What two policies both apply to, in words, or nil when they cannot meet: with a workload
    /// list, a workload both select; without one, the same namespace (or the root namespace's
    /// mesh-wide scope) where one applies namespace-wide or both select by the same labels.
    private static func sharedScope(
        _ a: AuthorizationPolicy, _ b: AuthorizationPolicy, workloads: [Workload]?, rootNamespace: String
    ) -> String? {
        if let workloads {
            let both = workloads.first { applies(a, to: $0, rootNamespace: rootNamespace) && applies(b, to: $0, rootNamespace: rootNamespace) }
            return both.map { workload in
                "the workload {\(workload.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))} in \(workload.namespace)"
            }
        }
        let wideA = a.selector == nil && a.targetRef == nil && a.targetRefs.isEmpty
        let wideB = b.selector == nil && b.targetRef == nil && b.targetRefs.isEmpty
        let meshWide = (a.metadata.namespace == rootNamespace && wideA) || (b.metadata.namespace == rootNamespace && wideB)
        if meshWide { return "every workload of namespace \(a.metadata.namespace == rootNamespace ? b.metadata.namespace : a.metadata.namespace)" }
        guard a.metadata.namespace == b.metadata.namespace else { return nil }
        if wideA || wideB { return "the workloads of namespace \(a.metadata.namespace)" }
        if let selectorA = a.selector, selectorA == b.selector { return "the workloads selected by \(WorkloadSelector.text(selectorA.matchLabels))" }
        return nil
    }

    private static func applies(_ policy: AuthorizationPolicy, to workload: Workload, rootNamespace: String) -> Bool {
        guard policy.metadata.namespace == workload.namespace || policy.metadata.namespace == rootNamespace else { return false }
        guard policy.targetRef == nil && policy.targetRefs.isEmpty else { return false }
        return policy.selector?.matches(workload.labels) ?? true
    }
}
