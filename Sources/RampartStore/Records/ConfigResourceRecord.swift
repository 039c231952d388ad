import Foundation

/// Names one stored config resource: kind, namespace and name, unique together.
public struct ConfigResourceKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The resource kind, such as `AuthorizationPolicy`.
    public let kind: String
    /// The namespace.
    public let namespace: String
    /// The name within the namespace.
    public let name: String

    /// Creates a key.
    public init(kind: String, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// `Kind namespace/name`, the form messages and audit events use.
    public var description: String { "\(kind) \(namespace)/\(name)" }

    public static func < (lhs: ConfigResourceKey, rhs: ConfigResourceKey) -> Bool {
        (lhs.kind, lhs.namespace, lhs.name) < (rhs.kind, rhs.namespace, rhs.name)
    }
}

/// A resource to store: its key and the YAML document exactly as it was applied.
///
/// The store does not read YAML; the caller validates it first and says what it names.
public struct ConfigResourceInput: Sendable, Equatable {
    /// What the resource is.
    public let key: ConfigResourceKey
    /// The YAML document, as written.
    public let yaml: String
    /// The stored YAML this document repeats the `spec` of, when the caller compared them: if the
    /// store still holds exactly that text, the change is to metadata alone (labels, annotations),
    /// and the generation stays, as a Kubernetes API server keeps it for such a change.
    public let specSameAs: String?

    /// Creates an input.
    public init(kind: String, namespace: String, name: String, yaml: String, specSameAs: String? = nil) {
        self.key = ConfigResourceKey(kind: kind, namespace: namespace, name: name)
        self.yaml = yaml
        self.specSameAs = specSameAs
    }

    /// The generation after storing this document over `existing` (a different text): one more,
    /// unless only metadata changed (see `specSameAs`).
    public func generation(over existing: ConfigResourceRecord) -> Int64 {
        specSameAs == existing.yaml ? existing.generation : existing.generation + 1
    }
}

/// A stored config resource, as kept in `config_resources`.
public struct ConfigResourceRecord: Sendable, Codable, Equatable {
    /// The resource kind, such as `AuthorizationPolicy`.
    public var kind: String
    /// The namespace.
    public var namespace: String
    /// The name within the namespace.
    public var name: String
    /// 1 when created; one more each time an apply changes its `spec`.
    public var generation: Int64
    /// The YAML document as last applied.
    public var yaml: String
    /// When it was first applied.
    public var createdAt: Date
    /// When its YAML last changed.
    public var updatedAt: Date

    /// Creates a record.
    public init(kind: String, namespace: String, name: String, generation: Int64, yaml: String, createdAt: Date, updatedAt: Date) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.generation = generation
        self.yaml = yaml
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The key of this record.
    public var key: ConfigResourceKey { ConfigResourceKey(kind: kind, namespace: namespace, name: name) }

    enum CodingKeys: String, CodingKey {
        case kind
        case namespace
        case name
        case generation
        case yaml
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// What an apply did to one resource, in kubectl's words.
public enum ConfigChange: String, Sendable, Equatable {
    /// It was not stored before.
    case created
    /// Its YAML changed; its generation went up by one, unless only its metadata changed.
    case configured
    /// Its YAML was already stored as given; nothing was written.
    case unchanged
}

/// The outcome of applying one resource.
public struct ConfigApplyOutcome: Sendable, Equatable {
    /// The resource.
    public let key: ConfigResourceKey
    /// What happened to it.
    public let change: ConfigChange
    /// Its generation after the apply.
    public let generation: Int64

    /// Creates an outcome.
    public init(key: ConfigResourceKey, change: ConfigChange, generation: Int64) {
        self.key = key
        self.change = change
        self.generation = generation
    }
}

/// The outcome of applying a batch: one outcome per input, in order, and the config version after it.
public struct ConfigApplyResult: Sendable, Equatable {
    /// One per input, in the order given.
    public let outcomes: [ConfigApplyOutcome]
    /// The global config version after the apply (unchanged when nothing changed).
    public let version: Int64

    /// Creates a result.
    public init(outcomes: [ConfigApplyOutcome], version: Int64) {
        self.outcomes = outcomes
        self.version = version
    }

    /// Whether the apply changed anything.
    public var changedAnything: Bool { outcomes.contains { $0.change != .unchanged } }
}

/// Every stored resource at one config version, read in one transaction.
public struct ConfigSnapshotRecords: Sendable, Equatable {
    /// The global config version these resources belong to.
    public let version: Int64
    /// The resources, ordered by kind, namespace and name.
    public let resources: [ConfigResourceRecord]

    /// Creates a snapshot.
    public init(version: Int64, resources: [ConfigResourceRecord]) {
        self.version = version
        self.resources = resources
    }
}
