/// The mTLS modes in force for one workload, after mesh → namespace → workload → port inheritance.
public struct PeerModes: Sendable, Hashable {
    /// The mode for ports without a port-level setting.
    public let workloadMode: MTLSMode
    /// Port-level modes, already resolved (never UNSET).
    public let portModes: [Int: MTLSMode]
    /// The policies that took part, most specific last (`namespace/name`).
    public let sources: [String]

    /// The mode for a port.
    @inline(__always)
    public func mode(port: Int?) -> MTLSMode {
        guard let port, !portModes.isEmpty, let mode = portModes[port] else { return workloadMode }
        return mode
    }
}

/// Resolves PeerAuthentications the way Istio composes them for a workload.
///
/// The mesh policy is the root namespace's one without a selector, the namespace policy the
/// workload namespace's one without a selector, and the workload policy the one in the workload's
/// namespace whose selector matches; where several compete, the first loaded wins (Istio takes the
/// oldest). UNSET inherits from the next wider scope; with nothing set the mode is PERMISSIVE.
/// Selector policies in the root namespace are not applied to other namespaces, as in Istio.
enum PeerAuthenticationResolver {
    static func resolve(
        _ byNamespace: [String: [(policy: PeerAuthentication, order: Int)]], rootNamespace: String,
        namespace: String, labels: [String: String]
    ) -> PeerModes {
        var mesh: PeerAuthentication?
        var scope: PeerAuthentication?
        var workload: PeerAuthentication?
        for (policy, _) in byNamespace[rootNamespace] ?? [] where isWide(policy) && mesh == nil {
            mesh = policy
        }
        if namespace != rootNamespace {
            for (policy, _) in byNamespace[namespace] ?? [] {
                if isWide(policy) {
                    if scope == nil { scope = policy }
                } else if workload == nil, policy.selector?.matches(labels) ?? false {
                    workload = policy
                }
            }
        }
        var mode = MTLSMode.permissive
        var sources: [String] = []
        for policy in [mesh, scope, workload].compactMap({ $0 }) {
            sources.append(policy.id.qualifiedName)
            if policy.mode != .unset { mode = policy.mode }
        }
        var ports: [Int: MTLSMode] = [:]
        for (port, portMode) in workload?.portLevelMTLS ?? [:] {
            ports[port] = portMode == .unset ? mode : portMode
        }
        return PeerModes(workloadMode: mode, portModes: ports, sources: sources)
    }

    private static func isWide(_ policy: PeerAuthentication) -> Bool {
        policy.selector?.matchLabels.isEmpty ?? true
    }
}
