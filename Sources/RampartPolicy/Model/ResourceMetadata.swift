import Foundation

/// The metadata block of a resource: name, namespace and annotations.
public struct ResourceMetadata: Sendable, Hashable {
    /// The resource name.
    public let name: String
    /// The namespace: when the document names none, the namespace it was read into (`default`
    /// unless `apply -n` says otherwise).
    public let namespace: String
    /// Whether the document names its namespace (kubectl's `-n` fills in only the others).
    public let namespaceGiven: Bool
    /// The annotations, such as `istio.io/dry-run`.
    public let annotations: [String: String]
    /// The labels (kept for completeness; policies do not use them).
    public let labels: [String: String]
    /// `metadata.creationTimestamp` when the resource states one (as `kubectl get -o yaml` writes
    /// it): where several PeerAuthentications compete, the oldest wins.
    public internal(set) var creationTimestamp: Date?

    /// The annotation that turns a policy into a dry run.
    public static let dryRunAnnotation = "istio.io/dry-run"

    /// Creates metadata.
    public init(
        name: String, namespace: String?, annotations: [String: String] = [:], labels: [String: String] = [:],
        creationTimestamp: Date? = nil, defaultNamespace: String = "default"
    ) {
        self.name = name
        self.namespace = namespace ?? defaultNamespace
        namespaceGiven = namespace != nil
        self.annotations = annotations
        self.labels = labels
        self.creationTimestamp = creationTimestamp
    }
}
