/// An Istio PeerAuthentication: the mTLS mode a workload's inbound connections must use.
public struct PeerAuthentication: Sendable, Hashable {
    /// Name, namespace and annotations.
    public internal(set) var metadata: ResourceMetadata
    /// Where the resource was read from.
    public let location: SourceLocation
    /// The workload selector, if any.
    public let selector: WorkloadSelector?
    /// The workload-wide mode; UNSET inherits from the parent.
    public let mode: MTLSMode
    /// Per-port modes, keyed by workload port; `nil` when absent.
    public let portLevelMTLS: [Int: MTLSMode]?

    /// Creates a peer authentication.
    public init(
        metadata: ResourceMetadata, location: SourceLocation, selector: WorkloadSelector?, mode: MTLSMode,
        portLevelMTLS: [Int: MTLSMode]?
    ) {
        self.metadata = metadata
        self.location = location
        self.selector = selector
        self.mode = mode
        self.portLevelMTLS = portLevelMTLS
    }

    /// The identifier used in diagnostics.
    public var id: ResourceID { ResourceID(kind: .peerAuthentication, namespace: metadata.namespace, name: metadata.name) }
}

/// A peer authentication mode.
public enum MTLSMode: String, Sendable, Hashable, CaseIterable {
    /// Inherit from the parent scope.
    case unset = "UNSET"
    /// Plaintext only; no peer identity.
    case disable = "DISABLE"
    /// Both mTLS and plaintext.
    case permissive = "PERMISSIVE"
    /// mTLS only.
    case strict = "STRICT"
}
