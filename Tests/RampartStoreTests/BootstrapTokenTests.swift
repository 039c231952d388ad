import Foundation
import GRDB
import RampartStore
import Testing

@Suite("One-time bootstrap tokens")
struct BootstrapTokenTests {
    let spiffeID = "spiffe://cluster.local/ns/shop/sa/cart"

    /// A raw token the way an operator would receive it; only its hash reaches the store.
    func rawToken() -> String { "rampart-bootstrap-\(UUID().uuidString)-\(UUID().uuidString)" }

    @Test("an unknown token is reported as unknown")
    func unknown() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        #expect(try await store.redeemToken(sha256: sha256Hex(rawToken()), at: referenceTime, actor: "test") == .unknown)
        #expect(try await store.token(sha256: sha256Hex(rawToken())) == nil)
    }

    @Test("a token redeems once, then is already used at the first redemption's time")
    func redeemOnce() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let hash = sha256Hex(rawToken())
        let record = BootstrapTokenRecord(tokenSHA256: hash, spiffeID: spiffeID, createdAt: referenceTime, expiresAt: referenceTime.addingTimeInterval(3600))
        try await store.createToken(record, actor: "admin")
        #expect(try await store.token(sha256: hash) == record)

        let usedAt = referenceTime.addingTimeInterval(60)
        #expect(try await store.redeemToken(sha256: hash, at: usedAt, actor: "10.0.0.7") == .redeemed(spiffeID: spiffeID))
        #expect(try await store.token(sha256: hash)?.usedAt == usedAt)
        #expect(try await store.redeemToken(sha256: hash, at: usedAt.addingTimeInterval(5), actor: "10.0.0.8") == .alreadyUsed(at: usedAt))
        #expect(try await store.redeemToken(sha256: hash, at: usedAt.addingTimeInterval(10), actor: "10.0.0.9") == .alreadyUsed(at: usedAt))

        let types = try await store.events().map(\.eventType)
        #expect(types == [AuditEventType.tokenCreated.rawValue, AuditEventType.tokenUsed.rawValue])
        #expect(try await store.verifyAuditChain() == .intact(events: 2))
    }

    @Test("an expired token is refused and stays unused", arguments: [0.0, 1.0, 86400.0])
    func expired(secondsPastExpiry: Double) async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let hash = sha256Hex(rawToken())
        let expiresAt = referenceTime.addingTimeInterval(600)
        try await store.createToken(
            BootstrapTokenRecord(tokenSHA256: hash, spiffeID: spiffeID, createdAt: referenceTime, expiresAt: expiresAt), actor: "admin"
        )
        let outcome = try await store.redeemToken(sha256: hash, at: expiresAt.addingTimeInterval(secondsPastExpiry), actor: "test")
        #expect(outcome == .expired(at: expiresAt))
        #expect(try await store.token(sha256: hash)?.usedAt == nil)
        // A second token created with time to spare still works, so the refusal above was about expiry.
        let other = sha256Hex(rawToken())
        try await store.createToken(
            BootstrapTokenRecord(tokenSHA256: other, spiffeID: spiffeID, createdAt: referenceTime, expiresAt: expiresAt.addingTimeInterval(secondsPastExpiry + 1)),
            actor: "admin"
        )
        #expect(try await store.redeemToken(sha256: other, at: expiresAt.addingTimeInterval(secondsPastExpiry), actor: "test") == .redeemed(spiffeID: spiffeID))
    }

    @Test("concurrent redemptions of one token succeed exactly once")
    func concurrentRedemption() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let hash = sha256Hex(rawToken())
        try await store.createToken(
            BootstrapTokenRecord(tokenSHA256: hash, spiffeID: spiffeID, createdAt: referenceTime, expiresAt: referenceTime.addingTimeInterval(3600)),
            actor: "admin"
        )
        let outcomes = try await withThrowingTaskGroup(of: TokenRedemption.self) { group in
            for index in 0..<25 {
                group.addTask { try await store.redeemToken(sha256: hash, at: referenceTime.addingTimeInterval(Double(index)), actor: "caller-\(index)") }
            }
            var all: [TokenRedemption] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        #expect(outcomes.filter { $0 == .redeemed(spiffeID: spiffeID) }.count == 1)
        let usedAt = try #require(try await store.token(sha256: hash)?.usedAt)
        #expect(outcomes.filter { $0 == .alreadyUsed(at: usedAt) }.count == 24)
    }

    @Test("creating a token twice with the same hash fails and keeps the first")
    func duplicateToken() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let hash = sha256Hex(rawToken())
        let first = BootstrapTokenRecord(tokenSHA256: hash, spiffeID: spiffeID, createdAt: referenceTime, expiresAt: referenceTime.addingTimeInterval(3600))
        try await store.createToken(first, actor: "admin")
        let second = BootstrapTokenRecord(
            tokenSHA256: hash, spiffeID: "spiffe://cluster.local/ns/evil/sa/x", createdAt: referenceTime, expiresAt: referenceTime.addingTimeInterval(7200)
        )
        await #expect(throws: (any Error).self) { try await store.createToken(second, actor: "admin") }
        #expect(try await store.token(sha256: hash) == first)
        #expect(try await store.verifyAuditChain() == .intact(events: 1))
    }

    @Test("the database holds the token's hash but never the raw token")
    func onlyHashStored() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let raw = rawToken()
        let hash = sha256Hex(raw)
        do {
            let store = try directory.open()
            try await store.createToken(
                BootstrapTokenRecord(tokenSHA256: hash, spiffeID: spiffeID, createdAt: referenceTime, expiresAt: referenceTime.addingTimeInterval(3600)),
                actor: "admin"
            )
            #expect(try await store.redeemToken(sha256: hash, at: referenceTime.addingTimeInterval(1), actor: "test") == .redeemed(spiffeID: spiffeID))
        }

        // Every column of every token row: the hash is there, the raw token is not.
        let rows = try directory.rawConnection().read { db in try Row.fetchAll(db, sql: "SELECT * FROM bootstrap_tokens") }
        #expect(rows.count == 1)
        let values = rows.flatMap { row in row.databaseValues.map { $0.description } }
        #expect(values.contains { $0.contains(hash) })
        #expect(!values.contains { $0.contains(raw) })

        // The files on disk (database, WAL, shared memory): the hash is found, so the scan works; the raw token is not.
        let bytes = try directory.allDatabaseBytes()
        #expect(contains(bytes, Array(hash.utf8)))
        #expect(!contains(bytes, Array(raw.utf8)))
        let rawSecretPart = String(raw.dropFirst("rampart-bootstrap-".count))
        #expect(!contains(bytes, Array(rawSecretPart.utf8)))
    }
}
