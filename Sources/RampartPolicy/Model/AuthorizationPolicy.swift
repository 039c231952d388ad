/// An Istio AuthorizationPolicy: an action with rules, applied to selected workloads.
public struct AuthorizationPolicy: Sendable, Hashable {
    /// What the policy does when a rule matches.
    public enum Action: String, Sendable, Hashable, CaseIterable {
        case allow = "ALLOW"
        case deny = "DENY"
        case audit = "AUDIT"
        case custom = "CUSTOM"
    }

    /// Name, namespace and annotations.
    public internal(set) var metadata: ResourceMetadata
    /// Where the resource was read from.
    public let location: SourceLocation
    /// The workload selector, if any.
    public let selector: WorkloadSelector?
    /// `targetRef`, if given.
    public let targetRef: PolicyTargetReference?
    /// `targetRefs`, if given.
    public let targetRefs: [PolicyTargetReference]
    /// Whether `targetRefs` was written, even as an empty list: Istio's schema counts a field
    /// present when it is written (`has()`), so `selector` beside `targetRefs: []` is refused.
    public let targetRefsWritten: Bool
    /// The action; ALLOW when absent.
    public let action: Action
    /// Whether `action` was written in the YAML.
    public let actionGiven: Bool
    /// The extension provider name of a CUSTOM policy (`nil` when `provider` is absent).
    public let provider: String?
    /// The rules; `nil` when the field is absent.
    public let rules: [AuthorizationRule]?

    /// Creates a policy.
    public init(
        metadata: ResourceMetadata, location: SourceLocation, selector: WorkloadSelector?,
        targetRef: PolicyTargetReference?, targetRefs: [PolicyTargetReference], targetRefsWritten: Bool? = nil, action: Action?,
        provider: String?, rules: [AuthorizationRule]?
    ) {
        self.metadata = metadata
        self.location = location
        self.selector = selector
        self.targetRef = targetRef
        self.targetRefs = targetRefs
        self.targetRefsWritten = targetRefsWritten ?? !targetRefs.isEmpty
        self.action = action ?? .allow
        self.actionGiven = action != nil
        self.provider = provider
        self.rules = rules
    }

    /// The identifier used in diagnostics and decisions.
    public var id: ResourceID { ResourceID(kind: .authorizationPolicy, namespace: metadata.namespace, name: metadata.name) }

    /// The dry-run annotation's raw value, if present.
    public var dryRunValue: String? { metadata.annotations[ResourceMetadata.dryRunAnnotation] }
}

/// One rule: sources (`from`), operations (`to`) and conditions (`when`), all ANDed.
public struct AuthorizationRule: Sendable, Hashable {
    /// The `from` entries (ORed); `nil` when absent.
    public let from: [RuleSource?]?
    /// The `to` entries (ORed); `nil` when absent.
    public let to: [RuleOperation?]?
    /// The conditions (ANDed); `nil` when absent.
    public let when: [RuleCondition]?

    /// Creates a rule.
    public init(from: [RuleSource?]?, to: [RuleOperation?]?, when: [RuleCondition]?) {
        self.from = from
        self.to = to
        self.when = when
    }
}

/// A `from.source`: fields ANDed, values of one field ORed.
public struct RuleSource: Sendable, Hashable {
    /// Each field that was set, keyed by its YAML name (`principals`, `notIpBlocks`, ...).
    public let fields: [String: [String]]

    /// The YAML names of every source field, in Istio's order.
    public static let fieldNames = [
        "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces", "notNamespaces",
        "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks", "serviceAccounts", "notServiceAccounts",
        "trustDomains", "notTrustDomains",
    ]

    /// Creates a source.
    public init(fields: [String: [String]]) {
        self.fields = fields
    }
}

/// A `to.operation`: fields ANDed, values of one field ORed.
public struct RuleOperation: Sendable, Hashable {
    /// Each field that was set, keyed by its YAML name (`hosts`, `notPaths`, ...).
    public let fields: [String: [String]]

    /// The YAML names of every operation field.
    public static let fieldNames = ["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"]

    /// Creates an operation.
    public init(fields: [String: [String]]) {
        self.fields = fields
    }
}

/// A `when` condition: an attribute key with values and/or notValues.
public struct RuleCondition: Sendable, Hashable {
    /// The attribute, such as `request.headers[x-token]`.
    public let key: String
    /// Values of which one must match.
    public let values: [String]
    /// Values none of which may match.
    public let notValues: [String]

    /// Creates a condition.
    public init(key: String, values: [String], notValues: [String]) {
        self.key = key
        self.values = values
        self.notValues = notValues
    }
}
