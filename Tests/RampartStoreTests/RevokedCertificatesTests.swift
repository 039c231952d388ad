import Foundation
import GRDB
@testable import RampartStore
import Testing

@Suite("Unexpired revoked certificates: the set proxies refuse")
struct RevokedCertificatesTests {
    @Test("lists only revoked certificates still inside their validity, ordered by serial")
    func listsUnexpiredRevoked() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let active = makeRecord(lifetime: 7200)
        let revokedLater = makeRecord(spiffeID: "spiffe://cluster.local/ns/shop/sa/web", lifetime: 7200)
        let revokedSooner = makeRecord(spiffeID: "spiffe://cluster.local/ns/shop/sa/db", lifetime: 1800)
        let revokedExpired = makeRecord(lifetime: 600)
        try await store.recordIssued([active, revokedLater, revokedSooner, revokedExpired], audit: [])
        for record in [revokedLater, revokedSooner, revokedExpired] {
            _ = try await store.revoke(serial: record.serial, reason: "keyCompromise", at: referenceTime, actor: "admin")
        }

        let now = referenceTime.addingTimeInterval(900)
        let revoked = try await store.revokedCertificates(unexpiredAt: now)
        let expected = [revokedLater, revokedSooner].map { RevokedCertificate(serial: $0.serial, spiffeID: $0.spiffeID, notAfter: $0.notAfter) }
        #expect(revoked == expected.sorted { $0.serial < $1.serial })

        // A certificate is forgotten at its notAfter exactly.
        let atExpiry = try await store.revokedCertificates(unexpiredAt: revokedSooner.notAfter)
        #expect(atExpiry.map(\.serial) == [revokedLater.serial])
        #expect(try await store.revokedCertificates(unexpiredAt: revokedLater.notAfter).isEmpty)
    }

    @Test("an empty store and a store without revocations list nothing")
    func nothingRevoked() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        #expect(try await store.revokedCertificates(unexpiredAt: referenceTime).isEmpty)
        try await store.recordIssued([makeRecord(), makeRecord()], audit: [])
        #expect(try await store.revokedCertificates(unexpiredAt: referenceTime).isEmpty)
    }

    @Test("the query reads the partial index of revoked rows, not the whole table")
    func usesPartialIndex() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        try await store.recordIssued((0..<50).map { _ in makeRecord() }, audit: [])
        let raw = try directory.rawConnection()
        let plan = try await raw.read { db in
            try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN SELECT serial, spiffe_id, not_after FROM issued_certificates WHERE status = 'revoked' AND not_after > ?",
                arguments: [referenceTime]
            ).map { row -> String in row["detail"] }
        }
        #expect(plan.contains { $0.contains("issued_certificates_revoked") }, "plan: \(plan)")
    }

    @Test("opening a v2 store adds the revoked-certificate index and keeps every revocation")
    func migrateFromV2() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let revoked = {
            var record = makeRecord(lifetime: 3600)
            record.status = .revoked
            record.revokedAt = referenceTime
            record.revocationReason = "superseded"
            return record
        }()
        let active = makeRecord(lifetime: 3600)
        do {
            let pool = try DatabasePool(path: directory.databasePath)
            try Migrations.migrator.migrate(pool, upTo: "v2-config")
            try await pool.write { db in
                try revoked.insert(db)
                try active.insert(db)
            }
            let indexes = try await pool.read { db in try db.indexes(on: "issued_certificates").map(\.name) }
            #expect(!indexes.contains("issued_certificates_revoked"))
        }

        let store = try directory.open()
        #expect(try await store.appliedMigrations() == ["v1-issuance", "v2-config", "v3-revoked-index"])
        let listed = try await store.revokedCertificates(unexpiredAt: referenceTime)
        #expect(listed == [RevokedCertificate(serial: revoked.serial, spiffeID: revoked.spiffeID, notAfter: revoked.notAfter)])
        #expect(try await store.integrityCheck() == ["ok"])
    }
}
