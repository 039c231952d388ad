/// Validates a PeerAuthentication the way Istio's admission webhook does.
enum PeerAuthenticationValidator {
    static func validate(_ policy: PeerAuthentication) -> [Diagnostic] {
        var reporter = Reporter(resource: policy.id, location: policy.location)
        CommonChecks.metadata(policy.metadata, &reporter)
        CommonChecks.selector(policy.selector, "spec.selector", &reporter)
        if policy.metadata.annotations[ResourceMetadata.dryRunAnnotation] != nil {
            reporter.add(
                .badDryRun, "metadata.annotations.\(ResourceMetadata.dryRunAnnotation)",
                "PeerAuthentication does not support dry run; only AuthorizationPolicy does",
                fix: "remove the istio.io/dry-run annotation")
        }
        guard let ports = policy.portLevelMTLS else { return reporter.diagnostics }
        if policy.selector?.matchLabels.isEmpty ?? true {
            let why = policy.selector == nil
                ? "port-level mTLS needs a workload selector; mesh and namespace policies cannot set it"
                : "port-level mTLS needs a selector with labels; this selector has none, so it stands for the whole namespace"
            reporter.add(
                .badPortLevelMTLS, "spec.portLevelMtls", why,
                fix: "add selector.matchLabels for the workload, or remove portLevelMtls")
        }
        if ports.isEmpty {
            reporter.add(
                .badPortLevelMTLS, "spec.portLevelMtls", "portLevelMtls is set but lists no port",
                fix: "add a port entry such as 8080: {mode: DISABLE}, or remove the field")
        }
        for port in ports.keys.sorted() where !(1...65535).contains(port) {
            reporter.add(
                .badPort, "spec.portLevelMtls.\(port)", "port \(port) is outside 1-65535",
                fix: "key the entry by the workload's container port")
        }
        return reporter.diagnostics
    }
}
