import Foundation

/// The mTLS modes in force for one workload, after mesh → namespace → workload → port inheritance.
public struct PeerModes: Sendable, Hashable {
    /// The mode for ports without a port-level setting.
    public let workloadMode: MTLSMode
    /// Port-level modes, already resolved (never UNSET).
    public let portModes: [Int: MTLSMode]
    /// Where the modes came from, for `explain`: one reference, so that the modes stay three
    /// words in the resolved workload's first cache line, which the fast path reads.
    private let provenance: Provenance

    private final class Provenance: Sendable {
        let layers: [PeerLayer]
        let skipped: [(policy: String, reason: String)]

        init(layers: [PeerLayer], skipped: [(policy: String, reason: String)]) {
            self.layers = layers
            self.skipped = skipped
        }
    }

    /// The policies that took part, widest first: mesh, namespace, workload.
    public var layers: [PeerLayer] { provenance.layers }
    /// The PeerAuthentications of the mesh and of the workload's namespace that do not apply, each
    /// with why (`namespace/name`, reason), for `explain`.
    public var skipped: [(policy: String, reason: String)] { provenance.skipped }

    init(workloadMode: MTLSMode, portModes: [Int: MTLSMode], layers: [PeerLayer], skipped: [(policy: String, reason: String)] = []) {
        self.workloadMode = workloadMode
        self.portModes = portModes
        provenance = Provenance(layers: layers, skipped: skipped)
    }

    public static func == (a: PeerModes, b: PeerModes) -> Bool {
        a.workloadMode == b.workloadMode && a.portModes == b.portModes && a.layers == b.layers
            && a.skipped.map(\.policy) == b.skipped.map(\.policy) && a.skipped.map(\.reason) == b.skipped.map(\.reason)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(workloadMode)
        hasher.combine(portModes)
        hasher.combine(layers)
    }

    /// The policies that took part, most specific last (`namespace/name`).
    public var sources: [String] { layers.map(\.policy) }

    /// The mode for a port.
    @inline(__always)
    public func mode(port: Int?) -> MTLSMode {
        guard let port, !portModes.isEmpty, let mode = portModes[port] else { return workloadMode }
        return mode
    }

    /// The policy that set the mode in force on a port (`namespace/name`), nil when none did and
    /// the mode is Istio's default, PERMISSIVE.
    public func setBy(port: Int?) -> String? {
        if let port, let workload = layers.last, workload.scope == .workload, let portMode = workload.ports[port],
            portMode != .unset
        {
            return workload.policy
        }
        return layers.last { $0.mode != .unset }?.policy
    }

    /// How the mode on a port came about, one line per policy and one for the port, for `explain`.
    public func explanation(port: Int?) -> [String] {
        guard !layers.isEmpty else {
            return ["no PeerAuthentication applies to the workload: PERMISSIVE, Istio's default"]
        }
        var inherited = MTLSMode.permissive
        var lines: [String] = []
        for layer in layers {
            var line = "\(layer.scope.rawValue) \(layer.policy): mtls.mode \(layer.mode.rawValue)"
            if layer.mode == .unset {
                line += ", inherits \(inherited.rawValue)"
            } else {
                inherited = layer.mode
            }
            if !layer.ports.isEmpty {
                line += "; portLevelMtls "
                    + layer.ports.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.rawValue)" }
                    .joined(separator: ", ")
            }
            lines.append(line)
        }
        let mode = self.mode(port: port)
        let portText = port.map { "port \($0)" } ?? "the connection (no port given)"
        if let port, let workload = layers.last, workload.ports[port] != nil {
            let raw = workload.ports[port] ?? .unset
            lines.append(
                "\(portText): \(mode.rawValue), from the portLevelMtls of \(workload.policy)"
                    + (raw == .unset ? " (UNSET there, so the workload's mode)" : ""))
        } else if let setter = setBy(port: port) {
            lines.append("\(portText): \(mode.rawValue), set by \(setter)")
        } else {
            lines.append("\(portText): PERMISSIVE, Istio's default (every policy that applies leaves the mode UNSET)")
        }
        return lines
    }
}

/// One PeerAuthentication that took part in a workload's mTLS mode.
public struct PeerLayer: Sendable, Hashable {
    /// Where the policy applies.
    public enum Scope: String, Sendable, Hashable {
        case mesh = "mesh-wide"
        case namespace = "namespace-wide"
        case workload = "workload"
    }

    /// Its scope.
    public let scope: Scope
    /// The policy (`namespace/name`).
    public let policy: String
    /// Its `mtls.mode` as written (UNSET when absent).
    public let mode: MTLSMode
    /// Its `portLevelMtls` as written (only a workload policy's is applied).
    public let ports: [Int: MTLSMode]
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
    /// without one counts as created at the same moment as any other without one), then the name,
    /// then the namespace, each in byte order (so `a` before `a-b`).
    static func precedes(_ a: PeerAuthentication, _ b: PeerAuthentication) -> Bool {
        let first = a.metadata.creationTimestamp ?? .distantPast
        let second = b.metadata.creationTimestamp ?? .distantPast
        if first != second { return first < second }
        if a.metadata.name != b.metadata.name {
            return Array(a.metadata.name.utf8).lexicographicallyPrecedes(Array(b.metadata.name.utf8))
        }
        return Array(a.metadata.namespace.utf8).lexicographicallyPrecedes(Array(b.metadata.namespace.utf8))
    }

    /// The policies in Istio's order.
    static func ordered(_ policies: [PeerAuthentication]) -> [PeerAuthentication] {
        policies.sorted(by: precedes)
    }

    static func resolve(
        _ byNamespace: [String: [(policy: PeerAuthentication, order: Int)]], rootNamespace: String,
        namespace: String, labels: [String: String]
    ) -> PeerModes {
        if WorkloadSelector.isGateway(labels) {
            // PeerAuthentication governs sidecars; a gateway's listeners take their TLS from its
            // Gateway servers, so it accepts plaintext and mTLS whatever the mesh's mode.
            let candidates = ordered(((byNamespace[rootNamespace] ?? []) + (namespace == rootNamespace ? [] : byNamespace[namespace] ?? [])).map(\.policy))
                .filter { isWide($0) || ($0.selector?.matches(labels) ?? false) }
            let reason = "not applied: the workload is a gateway (its labels), and PeerAuthentication governs sidecars only; a gateway accepts plaintext and mTLS"
            return PeerModes(workloadMode: .permissive, portModes: [:], layers: [], skipped: candidates.map { ($0.id.qualifiedName, reason) })
        }
        var mesh: PeerAuthentication?
        var scope: PeerAuthentication?
        var workload: PeerAuthentication?
        var skipped: [(policy: String, reason: String)] = []
        let oldest = "Istio applies only the oldest (creationTimestamp, then name)"
        for policy in ordered((byNamespace[rootNamespace] ?? []).map(\.policy)) {
            if isWide(policy) {
                if let mesh {
                    skipped.append((policy.id.qualifiedName, "not applied: \(mesh.id.qualifiedName) is also mesh-wide, and \(oldest)"))
                } else {
                    mesh = policy
                }
            } else if policy.selector?.matches(labels) ?? false {
                skipped.append(
                    (policy.id.qualifiedName,
                     "not applied: a PeerAuthentication with a selector in the root namespace is ignored, as in Istio"))
            }
        }
        if namespace != rootNamespace {
            for policy in ordered((byNamespace[namespace] ?? []).map(\.policy)) {
                let name = policy.id.qualifiedName
                if isWide(policy) {
                    if let scope {
                        skipped.append((name, "not applied: \(scope.id.qualifiedName) is also namespace-wide, and \(oldest)"))
                    } else {
                        scope = policy
                    }
                } else if policy.selector?.matches(labels) ?? false {
                    if let workload {
                        skipped.append((name, "not applied: \(workload.id.qualifiedName) also selects the workload, and \(oldest)"))
                    } else {
                        workload = policy
                    }
                } else {
                    skipped.append(
                        (name,
                         "not applied: it selects \(WorkloadSelector.text(policy.selector?.matchLabels ?? [:])), and the workload's"
                            + " labels are \(WorkloadSelector.text(labels))"))
                }
            }
        }
        var mode = MTLSMode.permissive
        var layers: [PeerLayer] = []
        for (level, policy) in [(PeerLayer.Scope.mesh, mesh), (.namespace, scope), (.workload, workload)] {
            guard let policy else { continue }
            layers.append(
                PeerLayer(
                    scope: level, policy: policy.id.qualifiedName, mode: policy.mode,
                    ports: level == .workload ? policy.portLevelMTLS ?? [:] : [:]))
            if policy.mode != .unset { mode = policy.mode }
        }
        var ports: [Int: MTLSMode] = [:]
        for (port, portMode) in workload?.portLevelMTLS ?? [:] {
            ports[port] = portMode == .unset ? mode : portMode
        }
        return PeerModes(workloadMode: mode, portModes: ports, layers: layers, skipped: skipped)
    }

    private static func isWide(_ policy: PeerAuthentication) -> Bool {
        policy.selector?.matchLabels.isEmpty ?? true
    }
}
