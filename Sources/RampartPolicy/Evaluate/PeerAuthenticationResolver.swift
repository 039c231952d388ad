import Foundation

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
/// namespace whose selector matches; where several compete, the oldest wins, as in Istio (see
/// `precedes`). UNSET inherits from the next wider scope; with nothing set the mode is PERMISSIVE.
/// Selector policies in the root namespace are not applied to other namespaces, as in Istio.
enum PeerAuthenticationResolver {
    /// Istio's order among competing policies: the older `creationTimestamp` first (a policy
    /// without one counts as created at the same moment as any other without one), then
    /// `name.namespace` in byte order.
    static func precedes(_ a: PeerAuthentication, _ b: PeerAuthentication) -> Bool {
        let first = a.metadata.creationTimestamp ?? .distantPast
        let second = b.metadata.creationTimestamp ?? .distantPast
        if first != second { return first < second }
        return Array("\(a.metadata.name).\(a.metadata.namespace)".utf8)
            .lexicographicallyPrecedes(Array("\(b.metadata.name).\(b.metadata.namespace)".utf8))
    }

    /// The policies in Istio's order.
    static func ordered(_ policies: [PeerAuthentication]) -> [PeerAuthentication] {
        policies.sorted(by: precedes)
    }

    static func resolve(
        _ byNamespace: [String: [(policy: PeerAuthentication, order: Int)]], rootNamespace: String,
        namespace: String, labels: [String: String]
    ) -> PeerModes {
        var mesh: PeerAuthentication?
        var scope: PeerAuthentication?
        var workload: PeerAuthentication?
        for policy in ordered((byNamespace[rootNamespace] ?? []).map(\.policy)) where isWide(policy) && mesh == nil {
            mesh = policy
        }
        if namespace != rootNamespace {
            for policy in ordered((byNamespace[namespace] ?? []).map(\.policy)) {
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
