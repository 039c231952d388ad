import Foundation
import GRDB
@testable import RampartStore
import Testing

@Suite("Migrating a v1 store to the config schema")
struct ConfigMigrationTests {
    @Test("opening a store made before v2-config adds the config tables and keeps every certificate, token and audit event")
    func migrateFromV1() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let records = (0..<3).map { index in makeRecord(issuedAt: referenceTime.addingTimeInterval(Double(index))) }
        let token = BootstrapTokenRecord(
            tokenSHA256: sha256Hex("v1-token"), spiffeID: "spiffe://cluster.local/ns/shop/sa/cart", createdAt: referenceTime, expiresAt: referenceTime.addingTimeInterval(600)
        )

        // A database exactly as a v1-only release left it.
        do {
            let pool = try DatabasePool(path: directory.databasePath)
            try Migrations.migrator.migrate(pool, upTo: "v1-issuance")
            try await pool.write { db in
                for record in records { try record.insert(db) }
                try token.insert(db)
                try AuditChain.append(records.map(issuedEntry(for:)), in: db)
            }
            #expect(try await pool.read { db in try db.tableExists("config_resources") } == false)
        }

        let store = try directory.open()
        #expect(try await store.appliedMigrations() == ["v1-issuance", "v2-config", "v3-revoked-index"])
        for record in records {
            #expect(try await store.certificate(serial: record.serial) == record)
        }
        #expect(try await store.token(sha256: token.tokenSHA256) == token)
        #expect(try await store.verifyAuditChain() == .intact(events: records.count))
        #expect(try await store.configVersion() == 0)

        let result = try await store.applyConfig([configPolicy("after-migration")], at: referenceTime, actor: "admin")
        #expect(result.version == 1)
        #expect(try await store.verifyAuditChain() == .intact(events: records.count + 1))
        #expect(try await store.integrityCheck() == ["ok"])
    }
}
