/// A workload selector: the labels a workload must carry for a policy to apply to it.
public struct WorkloadSelector: Sendable, Hashable {
    /// The labels to match; every one must be present with the same value.
    public let matchLabels: [String: String]

    /// Creates a selector.
    public init(matchLabels: [String: String]) {
        self.matchLabels = matchLabels
    }

    /// Whether `labels` are those of an Istio gateway's pods: the default install's
    /// `istio: ingressgateway` or `egressgateway` (or `app: istio-ingressgateway`,
    /// `istio-egressgateway`), or the `gateway.networking.k8s.io/gateway-name` label Istio puts on
    /// the pods it deploys for a Gateway API gateway.
    public static func isGateway(_ labels: [String: String]) -> Bool {
        isIngressGateway(labels) || labels["istio"] == "egressgateway" || labels["app"] == "istio-egressgateway"
    }

    /// Whether `labels` are those of an ingress gateway's pods: Istio's default ingress labels, or
    /// a Gateway API gateway's.
    public static func isIngressGateway(_ labels: [String: String]) -> Bool {
        labels["istio"] == "ingressgateway" || labels["app"] == "istio-ingressgateway"
            || labels["gateway.networking.k8s.io/gateway-name"] != nil
    }

    /// Whether a workload with `labels` is selected.
    public func matches(_ labels: [String: String]) -> Bool {
        for (key, value) in matchLabels where labels[key] != value { return false }
        return true
    }

    /// Labels as messages show them: `{app: web, version: v1}`, sorted by name.
    public static func text(_ labels: [String: String]) -> String {
        "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
    }
}

/// A reference to the resource a policy attaches to instead of a selector (Gateway, Service, ...).
public struct PolicyTargetReference: Sendable, Hashable {
    /// The API group (empty for core, `gateway.networking.k8s.io`, `networking.istio.io`).
    public let group: String
    /// The kind, such as `Gateway` or `Service`.
    public let kind: String
    /// The name of the target.
    public let name: String
    /// The namespace; Istio requires it to be empty.
    public let namespace: String?

    /// Creates a target reference.
    public init(group: String, kind: String, name: String, namespace: String?) {
        self.group = group
        self.kind = kind
        self.name = name
        self.namespace = namespace
    }

    /// The label Gateway API deployments carry with the gateway's name.
    public static let gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"
}
