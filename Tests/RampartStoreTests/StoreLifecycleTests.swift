import Foundation
import GRDB
import RampartStore
import Testing

@Suite("Opening, checking and reopening the store")
struct StoreLifecycleTests {
    @Test("a new store uses WAL, has its migrations applied and passes integrity_check")
    func freshStoreIsHealthy() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        #expect(store.path == directory.databasePath)
        #expect(try await store.journalMode() == "wal")
        let migrations = try await store.appliedMigrations()
        #expect(!migrations.isEmpty)
        #expect(migrations.contains("v1-issuance"))
        #expect(try await store.integrityCheck() == ["ok"])

        // Seen from an independent connection: WAL is recorded in the file, and the tables exist.
        let (journalMode, tables) = try await directory.rawConnection().read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Set(String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")))
        }
        #expect(journalMode == "wal")
        #expect(tables.isSuperset(of: ["issued_certificates", "bootstrap_tokens", "audit_events", "ca_authorities"]))
    }

    @Test("reopening does not re-apply migrations")
    func reopenKeepsMigrations() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let first = try await directory.open().appliedMigrations()
        let second = try await directory.open().appliedMigrations()
        #expect(first == second)
        #expect(try await directory.open().integrityCheck() == ["ok"])
    }

    @Test("a file that is not a SQLite database is refused as damaged, and left as it is")
    func damagedFile() throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: directory.databasePath))
        do {
            _ = try directory.open()
            Issue.record("a damaged store was opened")
        } catch {
            #expect("\(error)".contains("damaged or is not a SQLite database"), "\(error)")
            #expect("\(error)".contains("backup"), "\(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.databasePath)) == garbage)
    }

    @Test("a store cannot be opened in a directory that does not exist")
    func missingDirectory() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let path = (directory.path as NSString).appendingPathComponent("no/such/dir/rampart.sqlite")
        await expectStoreError(.unavailable) { _ = try SQLiteStore(path: path) }
    }

    @Test("a file that is not SQLite cannot be opened as a store")
    func notADatabase() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let junk = String(repeating: "this is not an SQLite database file. ", count: 200)
        try junk.write(toFile: directory.databasePath, atomically: true, encoding: .utf8)
        await expectStoreError(.unavailable) { _ = try directory.open() }
    }

    @Test("certificates, revocations, tokens, authorities and the audit chain survive reopening")
    func dataSurvivesReopen() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let records = (0..<5).map { index in makeRecord(issuedAt: referenceTime.addingTimeInterval(Double(index))) }
        let tokenHash = sha256Hex("reopen-token-\(UUID().uuidString)")
        let spentHash = sha256Hex("spent-token-\(UUID().uuidString)")
        let authority = AuthorityRecord(
            serial: randomSerial(), subject: "O=cluster.local,CN=Rampart root CA", certificatePEM: "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n",
            slot: .active, notBefore: referenceTime, notAfter: referenceTime.addingTimeInterval(86400 * 3650), createdAt: referenceTime
        )
        var eventsBefore: [AuditEvent] = []
        do {
            let store = try directory.open()
            try await store.recordIssued(records, audit: records.map(issuedEntry))
            _ = try await store.revoke(serial: records[1].serial, reason: "superseded", at: referenceTime.addingTimeInterval(100), actor: "admin")
            for hash in [tokenHash, spentHash] {
                try await store.createToken(
                    BootstrapTokenRecord(tokenSHA256: hash, spiffeID: records[0].spiffeID, createdAt: referenceTime, expiresAt: referenceTime.addingTimeInterval(3600)),
                    actor: "admin"
                )
            }
            _ = try await store.redeemToken(sha256: spentHash, at: referenceTime.addingTimeInterval(10), actor: "test")
            try await store.recordAuthority(authority)
            eventsBefore = try await store.events()
        }

        let reopened = try directory.open()
        #expect(try await reopened.journalMode() == "wal")
        for (index, record) in records.enumerated() {
            let stored = try #require(try await reopened.certificate(serial: record.serial))
            #expect(stored.status == (index == 1 ? .revoked : .active))
            #expect(stored.spiffeID == record.spiffeID && stored.notAfter == record.notAfter && stored.chainPEM == record.chainPEM)
        }
        #expect(try await reopened.certificate(serial: records[1].serial)?.revocationReason == "superseded")
        #expect(try await reopened.redeemToken(sha256: spentHash, at: referenceTime.addingTimeInterval(20), actor: "test")
            == .alreadyUsed(at: referenceTime.addingTimeInterval(10)))
        #expect(try await reopened.redeemToken(sha256: tokenHash, at: referenceTime.addingTimeInterval(20), actor: "test") == .redeemed(spiffeID: records[0].spiffeID))
        #expect(try await reopened.authorities() == [authority])

        let eventsAfter = try await reopened.events()
        #expect(Array(eventsAfter.prefix(eventsBefore.count)) == eventsBefore)
        #expect(eventsAfter.count == eventsBefore.count + 1)
        #expect(try await reopened.verifyAuditChain() == .intact(events: eventsAfter.count))
        #expect(try await reopened.integrityCheck() == ["ok"])
    }

    @Test("recording an authority again updates its slot")
    func authoritySlotUpdate() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        var authority = AuthorityRecord(
            serial: randomSerial(), subject: "CN=root", certificatePEM: "pem", slot: .prepared,
            notBefore: referenceTime, notAfter: referenceTime.addingTimeInterval(86400), createdAt: referenceTime
        )
        try await store.recordAuthority(authority)
        authority.slot = .active
        try await store.recordAuthority(authority)
        #expect(try await store.authorities() == [authority])
    }
}
