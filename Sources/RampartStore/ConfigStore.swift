import Foundation

/// The control plane's config resources, with one global version that every change bumps.
///
/// The store keeps YAML documents as given and never parses them: callers validate first.
public protocol ConfigStore: Sendable {
    /// Stores a batch in one transaction: all of it, or (on any error) none of it.
    ///
    /// A resource whose YAML is already stored as given is `unchanged`: its generation stays and,
    /// when nothing in the batch changed, so does the config version. Otherwise the version goes
    /// up by one for the batch, and each changed resource gets an audit event in the same
    /// transaction.
    func applyConfig(_ resources: [ConfigResourceInput], at time: Date, actor: String) async throws -> ConfigApplyResult
    /// What `applyConfig` would do with the batch, worked out in a transaction that is rolled back:
    /// the same outcomes, version and errors, and nothing stored or audited.
    func previewConfig(_ resources: [ConfigResourceInput], at time: Date, actor: String) async throws -> ConfigApplyResult
    /// Deletes one resource, bumps the version and audits it; `StoreError.notFound` when absent.
    func deleteConfig(_ key: ConfigResourceKey, at time: Date, actor: String) async throws -> ConfigDeletion
    /// Deletes every listed resource that is stored, in one transaction: one version bump for the
    /// batch when anything was deleted, and an audit event per deletion. Keys not stored are
    /// returned as missing, not treated as errors.
    func deleteConfig(_ keys: [ConfigResourceKey], at time: Date, actor: String) async throws -> ConfigBatchDeletion
    /// One resource, if stored.
    func configResource(_ key: ConfigResourceKey) async throws -> ConfigResourceRecord?
    /// Resources of a kind (every kind when nil) in a namespace (every namespace when nil).
    func configResources(kind: String?, namespace: String?) async throws -> [ConfigResourceRecord]
    /// The global config version: 0 until the first change.
    func configVersion() async throws -> Int64
    /// The version and every resource, read together so that they agree.
    func configSnapshot() async throws -> ConfigSnapshotRecords
}

/// What a batch delete removed, what it did not find, and the config version after it.
public struct ConfigBatchDeletion: Sendable, Equatable {
    /// The resources deleted, as they were stored, in the order asked.
    public let deleted: [ConfigResourceRecord]
    /// The keys that were not stored, in the order asked.
    public let missing: [ConfigResourceKey]
    /// The global config version after the batch (unchanged when nothing was deleted).
    public let version: Int64

    /// Creates a batch deletion.
    public init(deleted: [ConfigResourceRecord], missing: [ConfigResourceKey], version: Int64) {
        self.deleted = deleted
        self.missing = missing
        self.version = version
    }
}

/// What a delete removed, and the config version after it.
public struct ConfigDeletion: Sendable, Equatable {
    /// The resource as it was stored.
    public let record: ConfigResourceRecord
    /// The global config version after the delete.
    public let version: Int64

    /// Creates a deletion.
    public init(record: ConfigResourceRecord, version: Int64) {
        self.record = record
        self.version = version
    }
}
