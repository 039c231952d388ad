import Foundation
import GRDB

/// The embedded store: one SQLite file in WAL mode, opened through GRDB on the system's libsqlite3.
///
/// Writers in other processes (`rampart cert revoke` while the CA runs) are waited for rather than
/// refused. Issued certificates go through a group commit, so concurrent issuances share one fsync.
public final class SQLiteStore: Sendable {
    /// The database file.
    public let path: String
    /// A pool of connections for a store opened to write; one read-only connection for a store
    /// opened only to read by someone who cannot write it (see `init(path:access:)`).
    let pool: any DatabaseWriter
    private let issuance: GroupCommitter<PendingWrite>

    enum PendingWrite: Sendable {
        /// A condition checked first, inside the transaction: the certificate with this serial
        /// (normalized) is on record and not revoked.
        case renewing(String)
        case certificate(CertificateRecord)
        case audit(AuditEntry)
    }

    /// How a command means to use the store.
    public enum Access: Sendable {
        /// To read and write: the store is created if absent and its schema brought up to date.
        case readWrite
        /// Only to read: a read-only connection that creates, changes and locks nothing, so that a
        /// read neither waits for another process's write nor touches a damaged file. It serves
        /// the owner as well as anyone else (an operator reading the owner's store, a copy on
        /// read-only media). Only a store written by an older rampart, whose schema must be brought
        /// up to date first, is opened as for `readWrite` by a user who may write it.
        case readOnly
    }

    /// Opens the store at `path`: for `readWrite` (the default), creating it if absent and
    /// bringing its schema up to date; for `readOnly`, see `Access.readOnly`.
    public init(path: String, access: Access = .readWrite) throws {
        self.path = path
        switch access {
        case .readWrite:
            pool = try Self.openReadWrite(path)
        case .readOnly:
            let owner = Self.canWrite(path)
            if let queue = try Self.openReadOnly(path, outdated: owner ? .reportNil : .refuse) {
                pool = queue
            } else {
                pool = try Self.openReadWrite(path)
            }
        }
        let pool = self.pool
        issuance = GroupCommitter(label: "rampart.store.group-commit") { callers in
            try pool.write { db in
                var audits: [AuditEntry] = []
                var outcomes: [(any Error)?] = []
                outcomes.reserveCapacity(callers.count)
                for writes in callers {
                    // A caller's conditions come first, so a refused caller has written nothing.
                    if case .renewing(let serial)? = writes.first, let refusal = try Self.renewalRefusal(serial, in: db) {
                        outcomes.append(refusal)
                        continue
                    }
                    for write in writes {
                        switch write {
                        case .renewing: break
                        case .certificate(let record): try Self.insert(record, in: db)
                        case .audit(let entry): audits.append(entry)
                        }
                    }
                    outcomes.append(nil)
                }
                try AuditChain.append(audits, in: db)
                return outcomes
            }
        }
    }

    /// Whether this process may write the database, its directory, and the WAL files beside it,
    /// as opening it for writing requires.
    static func canWrite(_ path: String) -> Bool {
        // Checked for the effective user, who is the one SQLite opens the files as.
        func writable(_ file: String) -> Bool { faccessat(AT_FDCWD, file, W_OK, AT_EACCESS) == 0 }
        let directory = (path as NSString).deletingLastPathComponent
        guard writable(directory.isEmpty ? "." : directory) else { return false }
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            guard writable(file) else { return false }
        }
        return true
    }

    /// One read-only connection to a store this process cannot write.
    ///
    /// While a writer has the store open, its `-wal` and `-shm` files are beside the database
    /// and SQLite reads through them without writing. Without a `-wal` file every change is in
    /// the database itself (SQLite removes the file when its last writer closes cleanly), and the
    /// file is opened as immutable: SQLite then creates no `-shm` file, which would be the
    /// reader's and could keep the owner's next writer out. A writer starting during such a read
    /// is not seen by it; the command reads again when run again.
    /// What `openReadOnly` does with a store whose schema is older than this rampart's.
    enum OutdatedSchema {
        /// Refuse it, saying who can bring it up to date.
        case refuse
        /// Return nil: the caller may write the store and opens it to do so.
        case reportNil
    }

    static func openReadOnly(_ path: String, outdated: OutdatedSchema = .refuse) throws -> DatabaseQueue? {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let walFile = FileManager.default.fileExists(atPath: path + "-wal")
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(
                .unavailable,
                "there is no store at \(path), and this user cannot create one there: check the path, or run 'rampart ca init' as the directory's owner")
        }
        let location: String
        if walFile {
            location = path
        } else {
            let escaped = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
            location = "file:\(escaped)?immutable=1"
        }
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: location, configuration: configuration)
            let (newer, current, unrecorded) = try queue.read { db in
                (try Migrations.unknownMigrations(db), try Migrations.migrator.hasCompletedMigrations(db), try Migrations.isUnrecorded(db))
            }
            if !newer.isEmpty { throw Self.newerStore(path, newer) }
            if unrecorded { throw Self.unrecordedSchema(path) }
            if !current && outdated == .reportNil { return nil }
            guard current else {
                throw StoreError(
                    .unavailable,
                    "the store at \(path) was written by an older rampart, and this user cannot bring its schema up to date: run any rampart command on it once as the directory's owner (or restart 'rampart ca serve'), then read it again")
            }
            if let problem = try queue.read(Migrations.schemaProblem) { throw Self.schemaChanged(path, problem) }
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB {
            throw StoreError(
                .unavailable,
                "the store at \(path) is damaged or is not a SQLite database (\(error.message ?? "\(error.resultCode)")): nothing was read or written. Restore the file from a backup, or check what replaced it")
        } catch let error as DatabaseError {
            let files = walFile ? "the database and the -wal and -shm files beside it" : "the database"
            throw StoreError(
                .unavailable,
                "cannot read the store at \(path) (\(error.message ?? "\(error.resultCode)")): this user cannot write it, so rampart opens it read-only, which needs read access to \(files). Give this user read access, or run the command as the directory's owner")
        } catch {
            throw StoreError(.unavailable, "cannot read the store at \(path): \(error)")
        }
        return queue
    }

    /// The refusal of a store whose schema records migrations this rampart does not know.
    static func newerStore(_ path: String, _ migrations: [String]) -> StoreError {
        StoreError(
            .unavailable,
            "the store at \(path) was written by a newer rampart (its schema records \(migrations.joined(separator: ", ")), which this rampart does not know): nothing was read or written. Use that rampart, or a newer one")
    }

    /// The refusal of a store with Rampart's tables and no record of the migrations that made them.
    static func unrecordedSchema(_ path: String) -> StoreError {
        StoreError(
            .unavailable,
            "the store at \(path) does not record the schema its tables have (its grdb_migrations table was removed): nothing was read or written. Restore the file from a backup")
    }

    /// The refusal of a store that lacks a table or key of the schema it records.
    static func schemaChanged(_ path: String, _ problem: String) -> StoreError {
        StoreError(
            .corrupt,
            "the store at \(path) lacks part of its schema (\(problem)): it was changed outside Rampart, and nothing was written. Restore the file from a backup")
    }

    /// The pool of a store opened to write, created if absent, its schema brought up to date.
    static func openReadWrite(_ path: String) throws -> DatabasePool {
        // SQLite would open a file it may not write read-only and fail at the first write, or not
        // at all when the write turns out to change nothing; a command that writes is refused first.
        if FileManager.default.fileExists(atPath: path) && !canWrite(path) {
            throw StoreError(
                .unavailable,
                "cannot open the store at \(path) for writing: this user may not write the database, the files beside it, or its directory (or they are on a read-only file system), and this command changes the store. Run it as the user that owns the state directory")
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            let (newer, current, unrecorded) = try pool.read { db in
                (try Migrations.unknownMigrations(db), try Migrations.migrator.hasCompletedMigrations(db), try Migrations.isUnrecorded(db))
            }
            if !newer.isEmpty { throw Self.newerStore(path, newer) }
            // Bringing the schema up to date would first make the record, then fail on tables
            // that are there: the file would change, and still be refused.
            if unrecorded { throw Self.unrecordedSchema(path) }
            // Bringing the schema up to date takes the write lock even when there is nothing to
            // do; a store already up to date is left alone, so that a command opening it waits for
            // no other process's write.
            if !current {
                try Migrations.migrator.migrate(pool)
            }
            if let problem = try pool.read(Migrations.schemaProblem) { throw Self.schemaChanged(path, problem) }
            return pool
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
            throw StoreError(
                .unavailable,
                "cannot open the store at \(path): another process held it locked for more than 10 seconds (\(error.message ?? "database is locked")). Wait for that process (another apply, or a stuck one) to finish, then try again")
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB {
            throw StoreError(
                .unavailable,
                "the store at \(path) is damaged or is not a SQLite database (\(error.message ?? "\(error.resultCode)")): nothing was read or written. Restore the file from a backup, or check what replaced it")
        } catch let error as DatabaseError
            where [.SQLITE_READONLY, .SQLITE_PERM, .SQLITE_CANTOPEN, .SQLITE_AUTH].contains(error.resultCode)
        {
            // Opening brings the schema up to date and keeps SQLite's WAL files beside the
            // database, so even a command that only reads needs to write there.
            let exists = FileManager.default.fileExists(atPath: path)
            throw StoreError(
                .unavailable,
                exists
                    ? "cannot open the store at \(path) for writing (\(error.message ?? "\(error.resultCode)")): this command changes the store, so it needs write access to the database and to its directory. Run it as the user that owns the state directory"
                    : "cannot create the store at \(path) (\(error.message ?? "\(error.resultCode)")): check that the directory exists and is writable, or run 'rampart ca init' first")
        } catch let error as DatabaseError where error.resultCode == .SQLITE_ERROR && (error.message ?? "").contains("already exists") {
            // The record of applied migrations no longer matches the tables (rows of grdb_migrations
            // removed): bringing the schema up to date would make tables that are there.
            throw StoreError(
                .unavailable,
                "the store at \(path) does not record the schema its tables have (its grdb_migrations table was edited): nothing was read or written. Restore the file from a backup")
        } catch {
            throw StoreError(.unavailable, "cannot open the store at \(path): \(error). Check the path and its permissions, or run 'rampart ca init' first")
        }
    }

    /// Why the certificate with this (normalized) serial cannot renew, or `nil` when it can: it is
    /// on record and not revoked.
    static func renewalRefusal(_ serial: String, in db: Database) throws -> RenewalRefusal? {
        guard let record = try statusRecord(serial, in: db) else { return RenewalRefusal(serial: serial, reason: .unknown) }
        guard record.status == .active else {
            return RenewalRefusal(serial: serial, reason: .revoked(at: record.revokedAt, reason: record.revocationReason))
        }
        return nil
    }

    /// The revocation state of the certificate with this (normalized) serial: one indexed read
    /// through a cached statement. A status this version does not know counts as revoked.
    static func statusRecord(_ serial: String, in db: Database) throws -> CertificateStatusRecord? {
        let statement = try db.cachedStatement(sql: "SELECT status, revoked_at, revocation_reason FROM issued_certificates WHERE serial = ?")
        guard let row = try Row.fetchOne(statement, arguments: [serial]) else { return nil }
        return CertificateStatusRecord(
            status: CertificateStatus(rawValue: row["status"]) ?? .revoked, revokedAt: row["revoked_at"], revocationReason: row["revocation_reason"]
        )
    }

    /// Inserts on the issuance path through a cached statement.
    static func insert(_ record: CertificateRecord, in db: Database) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO issued_certificates (serial, spiffe_id, public_key_sha256, not_before, not_after, issued_at,
                    caller_identity, auth_method, chain_pem, status, revoked_at, revocation_reason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        )
        try statement.execute(arguments: [
            record.serial, record.spiffeID, record.publicKeySHA256, StoredDate.text(record.notBefore), StoredDate.text(record.notAfter),
            StoredDate.text(record.issuedAt), record.callerIdentity, record.authMethod.rawValue, record.chainPEM, record.status.rawValue,
            record.revokedAt.map(StoredDate.text), record.revocationReason,
        ])
    }

    /// The journal mode in force (`wal` for a healthy store).
    public func journalMode() async throws -> String {
        try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    /// Runs SQLite's `PRAGMA integrity_check` and returns its lines (`["ok"]` when healthy).
    public func integrityCheck() async throws -> [String] {
        try await pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }

    /// Runs SQLite's `PRAGMA quick_check`, which reads every page of the file, and returns its
    /// lines (`["ok"]` when healthy); a store too damaged to run it throws the `damage` error.
    public func quickCheck() async throws -> [String] {
        do {
            return try await pool.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
        } catch {
            throw StoreError.damage(error, path: path) ?? error
        }
    }

    /// The names of the migrations applied, in order.
    public func appliedMigrations() async throws -> [String] {
        try await pool.read { db in try Migrations.migrator.appliedMigrations(db) }
    }

    /// Appends audit events for refusals and other non-issuance events through the group commit.
    public func appendBatched(_ entries: [AuditEntry]) async throws {
        try await issuance.submit(entries.map(PendingWrite.audit))
    }
}

extension SQLiteStore: IssuedCertificateStore {
    public func recordIssued(_ records: [CertificateRecord], audit: [AuditEntry]) async throws {
        try await recordIssued(records, audit: audit, renewing: nil)
    }

    /// Records certificates issued to a caller who authenticated with the certificate `renewing`
    /// (its serial, hex), in the same transaction that checks that certificate is on record and
    /// not revoked. When it is not, nothing is written and ``RenewalRefusal`` says why; a
    /// revocation committed before this call is always seen.
    public func recordIssued(_ records: [CertificateRecord], audit: [AuditEntry], renewing: String?) async throws {
        var writes: [PendingWrite] = []
        writes.reserveCapacity(records.count + audit.count + 1)
        if let renewing { writes.append(.renewing(Self.normalizeSerial(renewing))) }
        writes += records.map(PendingWrite.certificate)
        writes += audit.map(PendingWrite.audit)
        do {
            try await issuance.submit(writes)
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
            throw StoreError(.alreadyExists, "a certificate with one of the serials \(records.map(\.serial).joined(separator: ", ")) is already recorded: \(error.message ?? "")")
        }
    }

    /// Only the revocation state of a certificate: what the renewal path needs, read cheaply.
    ///
    /// A single indexed lookup, done synchronously on the caller's thread rather than hopping
    /// to a reader queue and back.
    public func status(serial: String) throws -> CertificateStatusRecord? {
        let key = Self.normalizeSerial(serial)
        return try pool.read { db in try Self.statusRecord(key, in: db) }
    }

    public func certificate(serial: String) async throws -> CertificateRecord? {
        let key = Self.normalizeSerial(serial)
        return try await pool.read { db in try CertificateRecord.fetchOne(db, key: key) }
    }

    public func certificates(matching filter: CertificateFilter) async throws -> [CertificateRecord] {
        try await pool.read { db in
            var request = CertificateRecord.all()
            if let id = filter.spiffeID { request = request.filter(Column("spiffe_id") == id) }
            if let before = filter.notAfterBefore { request = request.filter(Column("not_after") <= before) }
            if let after = filter.notAfterAfter { request = request.filter(Column("not_after") > after) }
            request = request.order(Column("issued_at").desc, Column("serial"))
            if let limit = filter.limit { request = request.limit(limit) }
            return try request.fetchAll(db)
        }
    }

    public func revoke(serial: String, reason: String?, at time: Date, actor: String) async throws -> CertificateRecord {
        let key = Self.normalizeSerial(serial)
        return try await pool.write { db in
            guard var record = try CertificateRecord.fetchOne(db, key: key) else {
                throw StoreError(.notFound, "no certificate with serial \(serial): list serials with 'rampart cert list'")
            }
            if record.status == .revoked {
                throw StoreError(.conflict, "certificate \(key) was already revoked at \(record.revokedAt.map(String.init(describing:)) ?? "an unknown time")")
            }
            record.status = .revoked
            record.revokedAt = time
            record.revocationReason = reason
            try record.update(db)
            try AuditChain.append(
                [AuditEntry(time: time, type: .certificateRevoked, actor: actor, subject: key, details: ["spiffe_id": record.spiffeID, "reason": reason ?? "unspecified"])],
                in: db
            )
            return record
        }
    }

    public func revokedCertificates(unexpiredAt now: Date) async throws -> [RevokedCertificate] {
        try await pool.read { db in
            // `status = 'revoked'` spelled as in the partial index's WHERE clause, so SQLite reads
            // that index; sorted here rather than by SQL, so no plan walks the primary key instead.
            let statement = try db.cachedStatement(
                sql: "SELECT serial, spiffe_id, not_after FROM issued_certificates WHERE status = 'revoked' AND not_after > ?"
            )
            return try Row.fetchAll(statement, arguments: [now])
                .map { row in RevokedCertificate(serial: row["serial"], spiffeID: row["spiffe_id"], notAfter: row["not_after"]) }
                .sorted { $0.serial < $1.serial }
        }
    }

    /// Serials are stored as lowercase hex without separators; accept `AB:CD`, `0xabcd` and upper case.
    static func normalizeSerial(_ serial: String) -> String {
        if isNormalSerial(serial) { return serial }
        var text = serial.lowercased().replacingOccurrences(of: ":", with: "")
        if text.hasPrefix("0x") { text.removeFirst(2) }
        while text.hasPrefix("0") && text.count > 1 { text.removeFirst() }
        return text
    }

    /// Whether a serial is already in stored form (lowercase hex digits, no leading zero), as the
    /// CA's own serials are: checked over bytes, so the renewal path copies nothing.
    private static func isNormalSerial(_ serial: String) -> Bool {
        let utf8 = serial.utf8
        return utf8.withContiguousStorageIfAvailable { bytes in
            guard let first = bytes.first, first != UInt8(ascii: "0") || bytes.count == 1 else { return false }
            return bytes.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
        } ?? false
    }
}

extension SQLiteStore: BootstrapTokenStore {
    public func createToken(_ record: BootstrapTokenRecord, actor: String) async throws {
        try await pool.write { db in
            try record.insert(db)
            try AuditChain.append(
                [AuditEntry(time: record.createdAt, type: .tokenCreated, actor: actor, subject: String(record.tokenSHA256.prefix(16)), details: ["spiffe_id": record.spiffeID, "expires_at": record.expiresAt.formatted(.iso8601)])],
                in: db
            )
        }
    }

    public func redeemToken(sha256: String, at time: Date, actor: String) async throws -> TokenRedemption {
        try await pool.write { db in
            guard var record = try BootstrapTokenRecord.fetchOne(db, key: sha256) else { return .unknown }
            if let used = record.usedAt { return .alreadyUsed(at: used) }
            if record.expiresAt <= time { return .expired(at: record.expiresAt) }
            record.usedAt = time
            try record.update(db)
            try AuditChain.append(
                [AuditEntry(time: time, type: .tokenUsed, actor: actor, subject: String(sha256.prefix(16)), details: ["spiffe_id": record.spiffeID])],
                in: db
            )
            return .redeemed(spiffeID: record.spiffeID)
        }
    }
}

extension SQLiteStore: AuditLog {
    public func append(_ entries: [AuditEntry]) async throws {
        try await pool.write { db in try AuditChain.append(entries, in: db) }
    }

    public func events() async throws -> [AuditEvent] {
        try await pool.read { db in try AuditEvent.order(Column("seq")).fetchAll(db) }
    }

    public func verifyAuditChain() async throws -> AuditVerification {
        AuditChain.verify(try await events())
    }
}

extension SQLiteStore: AuthorityStore {
    public func recordAuthority(_ record: AuthorityRecord) async throws {
        try await pool.write { db in try record.save(db) }
    }

    public func authorities() async throws -> [AuthorityRecord] {
        try await pool.read { db in try AuthorityRecord.order(Column("created_at")).fetchAll(db) }
    }
}

extension SQLiteStore {
    /// The token record for a hash, without spending it.
    public func token(sha256: String) async throws -> BootstrapTokenRecord? {
        try await pool.read { db in try BootstrapTokenRecord.fetchOne(db, key: sha256) }
    }
}
