import Crypto
import Foundation
import GRDB

extension ConfigResourceRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "config_resources"
}

extension SQLiteStore: ConfigStore {
    public func applyConfig(_ resources: [ConfigResourceInput], at time: Date, actor: String) async throws -> ConfigApplyResult {
        try await mapConfigErrors(batch: resources.count) {
            try await pool.write { db in try Self.apply(resources, at: time, actor: actor, in: db) }
        }
    }

    /// What `applyConfig` would do, worked out with reads alone: a dry run needs no write access,
    /// takes no lock and waits for no writer.
    public func previewConfig(_ resources: [ConfigResourceInput], at time: Date, actor: String) async throws -> ConfigApplyResult {
        try await mapConfigErrors(batch: resources.count) {
            try await pool.read { db in
                var seen: [ConfigResourceKey: Int] = [:]
                var outcomes: [ConfigApplyOutcome] = []
                for (index, input) in resources.enumerated() {
                    if let first = seen[input.key] {
                        throw StoreError(.conflict, "the batch names \(input.key) twice (items \(first + 1) and \(index + 1)); nothing would be stored. Keep one of them")
                    }
                    seen[input.key] = index
                    if let existing = try ConfigResourceRecord.fetchOne(db, key: Self.columns(input.key)) {
                        outcomes.append(
                            existing.yaml == input.yaml
                                ? ConfigApplyOutcome(key: input.key, change: .unchanged, generation: existing.generation)
                                : ConfigApplyOutcome(key: input.key, change: .configured, generation: input.generation(over: existing)))
                    } else {
                        outcomes.append(ConfigApplyOutcome(key: input.key, change: .created, generation: 1))
                    }
                }
                let current = try Self.currentVersion(in: db)
                let changed = outcomes.contains { $0.change != .unchanged }
                return ConfigApplyResult(outcomes: outcomes, version: changed ? current + 1 : current)
            }
        }
    }

    public func deleteConfig(_ key: ConfigResourceKey, at time: Date, actor: String) async throws -> ConfigDeletion {
        let batch = try await deleteConfig([key], at: time, actor: actor)
        guard let record = batch.deleted.first else {
            throw StoreError(.notFound, "\(key) is not in the config store; nothing was deleted. Check the kind, namespace and name against 'rampart get'")
        }
        return ConfigDeletion(record: record, version: batch.version)
    }

    public func deleteConfig(_ keys: [ConfigResourceKey], at time: Date, actor: String) async throws -> ConfigBatchDeletion {
        try await mapConfigErrors(batch: keys.count) {
            try await pool.write { db in
                var deleted: [ConfigResourceRecord] = []
                var missing: [ConfigResourceKey] = []
                var seen = Set<ConfigResourceKey>()
                for key in keys where seen.insert(key).inserted {
                    guard let record = try ConfigResourceRecord.fetchOne(db, key: Self.columns(key)) else {
                        missing.append(key)
                        continue
                    }
                    try record.delete(db)
                    deleted.append(record)
                }
                guard !deleted.isEmpty else {
                    return ConfigBatchDeletion(deleted: [], missing: missing, version: try Self.currentVersion(in: db))
                }
                let version = try Self.bumpVersion(at: time, in: db)
                try AuditChain.append(
                    deleted.map { record in
                        AuditEntry(time: time, type: .configDeleted, actor: actor, subject: record.key.description, details: [
                            "generation": String(record.generation), "version": String(version),
                        ])
                    },
                    in: db
                )
                return ConfigBatchDeletion(deleted: deleted, missing: missing, version: version)
            }
        }
    }

    public func configResource(_ key: ConfigResourceKey) async throws -> ConfigResourceRecord? {
        try await pool.read { db in try ConfigResourceRecord.fetchOne(db, key: Self.columns(key)) }
    }

    public func configResources(kind: String?, namespace: String?) async throws -> [ConfigResourceRecord] {
        try await pool.read { db in
            var request = ConfigResourceRecord.all()
            if let kind { request = request.filter(Column("kind") == kind) }
            if let namespace { request = request.filter(Column("namespace") == namespace) }
            return try request.order(Column("kind"), Column("namespace"), Column("name")).fetchAll(db)
        }
    }

    public func configVersion() async throws -> Int64 {
        try await pool.read { db in try Self.currentVersion(in: db) }
    }

    public func configSnapshot() async throws -> ConfigSnapshotRecords {
        try await pool.read { db in
            ConfigSnapshotRecords(
                version: try Self.currentVersion(in: db),
                resources: try ConfigResourceRecord.order(Column("kind"), Column("namespace"), Column("name")).fetchAll(db)
            )
        }
    }

    /// The body of an apply, inside one write transaction: any throw rolls back every row written.
    static func apply(_ resources: [ConfigResourceInput], at time: Date, actor: String, in db: Database) throws -> ConfigApplyResult {
        var seen: [ConfigResourceKey: Int] = [:]
        var outcomes: [ConfigApplyOutcome] = []
        var changed: [(ConfigApplyOutcome, String)] = []
        for (index, input) in resources.enumerated() {
            if let first = seen[input.key] {
                throw StoreError(.conflict, "the batch names \(input.key) twice (items \(first + 1) and \(index + 1)); nothing was stored. Keep one of them")
            }
            seen[input.key] = index
            let outcome: ConfigApplyOutcome
            if var existing = try ConfigResourceRecord.fetchOne(db, key: columns(input.key)) {
                if existing.yaml == input.yaml {
                    outcome = ConfigApplyOutcome(key: input.key, change: .unchanged, generation: existing.generation)
                } else {
                    existing.generation = input.generation(over: existing)
                    existing.yaml = input.yaml
                    existing.updatedAt = time
                    try existing.update(db)
                    outcome = ConfigApplyOutcome(key: input.key, change: .configured, generation: existing.generation)
                }
            } else {
                let record = ConfigResourceRecord(
                    kind: input.key.kind, namespace: input.key.namespace, name: input.key.name, generation: 1, yaml: input.yaml,
                    createdAt: time, updatedAt: time
                )
                try record.insert(db)
                outcome = ConfigApplyOutcome(key: input.key, change: .created, generation: 1)
            }
            outcomes.append(outcome)
            if outcome.change != .unchanged { changed.append((outcome, input.yaml)) }
        }
        guard !changed.isEmpty else { return ConfigApplyResult(outcomes: outcomes, version: try currentVersion(in: db)) }
        let version = try bumpVersion(at: time, in: db)
        try AuditChain.append(
            changed.map { outcome, yaml in
                AuditEntry(time: time, type: .configApplied, actor: actor, subject: outcome.key.description, details: [
                    "change": outcome.change.rawValue, "generation": String(outcome.generation), "version": String(version),
                    "yaml_sha256": sha256Hex(yaml),
                ])
            },
            in: db
        )
        return ConfigApplyResult(outcomes: outcomes, version: version)
    }

    static func currentVersion(in db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT version FROM config_version WHERE id = 1") ?? 0
    }

    /// Adds one to the global version and returns the new value.
    static func bumpVersion(at time: Date, in db: Database) throws -> Int64 {
        try db.execute(
            sql: """
                INSERT INTO config_version (id, version, updated_at) VALUES (1, 1, ?)
                ON CONFLICT(id) DO UPDATE SET version = version + 1, updated_at = excluded.updated_at
                """,
            arguments: [time]
        )
        return try currentVersion(in: db)
    }

    static func columns(_ key: ConfigResourceKey) -> [String: any DatabaseValueConvertible] {
        ["kind": key.kind, "namespace": key.namespace, "name": key.name]
    }

    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// Turns SQLite failures into store errors that say nothing was stored.
    private func mapConfigErrors<T>(batch: Int, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            let what = batch == 1 ? "the change" : "the batch of \(batch)"
            if error.resultCode == .SQLITE_CONSTRAINT {
                throw StoreError(.conflict, "\(what) broke a constraint of the config store (\(error.message ?? "\(error)")); nothing was stored. Kind, namespace and name must be non-empty")
            }
            // A damaged file is no passing failure: retrying cannot help.
            if let damage = StoreError.damage(error, path: path) { throw damage }
            throw StoreError(.unavailable, "the config store at \(path) could not be written (\(error.message ?? "\(error)")); nothing was stored. Retry, and check the disk and file permissions")
        }
    }
}

extension SQLiteStore {
    /// Where the config store and the audit log disagree, one sentence each; empty when they agree.
    ///
    /// Every change to the config store writes its audit events in the same transaction, so the
    /// log says what the store must hold: the config version of the last change, and for each
    /// resource whether it was last applied (with the digest of its document and its generation)
    /// or deleted. A hash chain alone cannot show events cut from its end, nor rows changed in
    /// the config tables without an event; this comparison shows both.
    public func configDisagreements() async throws -> [String] {
        try await pool.read { db in
            struct Last {
                let sequence: Int64
                let applied: Bool
                let digest: String?
                let generation: Int64?
            }
            var last: [String: Last] = [:]
            var lastVersion: Int64 = 0
            let types = [AuditEventType.configApplied.rawValue, AuditEventType.configDeleted.rawValue]
            for event in try AuditEvent.filter(types.contains(Column("event_type"))).order(Column("seq")).fetchAll(db) {
                let details = (try? JSONSerialization.jsonObject(with: Data(event.details.utf8))) as? [String: Any] ?? [:]
                if let version = (details["version"] as? String).flatMap({ Int64($0) }) { lastVersion = max(lastVersion, version) }
                last[event.subject] = Last(
                    sequence: event.sequence, applied: event.eventType == AuditEventType.configApplied.rawValue,
                    digest: details["yaml_sha256"] as? String, generation: (details["generation"] as? String).flatMap { Int64($0) })
            }
            var problems: [String] = []
            let version = try Self.currentVersion(in: db)
            if version != lastVersion {
                problems.append(
                    "the config version is \(version), but the audit log's last config change is version \(lastVersion):"
                        + " audit events were removed, or the version was changed outside Rampart")
            }
            var stored = Set<String>()
            for record in try ConfigResourceRecord.fetchAll(db) {
                let subject = record.key.description
                stored.insert(subject)
                guard let entry = last[subject] else {
                    problems.append("\(subject) is stored, but no audit event records it: it was added outside Rampart")
                    continue
                }
                if !entry.applied {
                    problems.append("\(subject) is stored, but its last audit event (\(entry.sequence)) deleted it: it was put back outside Rampart")
                } else if let digest = entry.digest, digest != Self.sha256Hex(record.yaml) {
                    problems.append("\(subject)'s stored document is not the one its last audit event (\(entry.sequence)) records: it was changed outside Rampart")
                } else if let generation = entry.generation, generation != record.generation {
                    problems.append("\(subject) is at generation \(record.generation), but its last audit event (\(entry.sequence)) records \(generation): it was changed outside Rampart")
                }
            }
            for (subject, entry) in last where entry.applied && !stored.contains(subject) {
                problems.append("\(subject) was applied (audit event \(entry.sequence)) and is no longer stored, but no deletion is recorded: it was removed outside Rampart")
            }
            return problems.sorted()
        }
    }
}
