import Foundation
import RampartStore
import Testing

@Suite("Issued certificates: recording, lookup, listing and revocation")
struct CertificateStoreTests {
    @Test("a recorded certificate is found by its serial")
    func recordThenLookUp() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let record = makeRecord()
        try await store.recordIssued([record], audit: [issuedEntry(for: record)])

        let found = try #require(try await store.certificate(serial: record.serial))
        #expect(found == record)
        #expect(found.status == .active)
        #expect(found.revokedAt == nil)
        #expect(try await store.certificate(serial: randomSerial()) == nil)
    }

    @Test("serial lookup accepts upper case, colons, a 0x prefix and leading zeros")
    func serialSpellings() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let record = makeRecord()
        try await store.recordIssued([record], audit: [])

        let pairs = stride(from: 0, to: record.serial.count, by: 2).map { offset -> String in
            let start = record.serial.index(record.serial.startIndex, offsetBy: offset)
            return String(record.serial[start..<record.serial.index(start, offsetBy: 2)])
        }
        let spellings = [
            record.serial.uppercased(),
            pairs.joined(separator: ":"),
            pairs.joined(separator: ":").uppercased(),
            "0x" + record.serial,
            "00" + record.serial,
        ]
        for spelling in spellings {
            let found = try await store.certificate(serial: spelling)
            #expect(found?.serial == record.serial, "lookup by \(spelling)")
        }
        // A different serial of the same length is not a match.
        var other = Array(record.serial)
        other[other.count - 1] = other[other.count - 1] == "0" ? "1" : "0"
        #expect(try await store.certificate(serial: String(other)) == nil)
    }

    @Test("listing filters by SPIFFE ID, newest first")
    func filterBySPIFFEID() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let cart = "spiffe://cluster.local/ns/shop/sa/cart"
        let checkout = "spiffe://cluster.local/ns/shop/sa/checkout"
        var cartRecords: [CertificateRecord] = []
        for index in 0..<5 {
            let record = makeRecord(spiffeID: index.isMultiple(of: 2) ? cart : checkout, issuedAt: referenceTime.addingTimeInterval(Double(index) * 60))
            if record.spiffeID == cart { cartRecords.append(record) }
            try await store.recordIssued([record], audit: [])
        }

        let listed = try await store.certificates(matching: CertificateFilter(spiffeID: cart))
        #expect(listed == cartRecords.sorted { $0.issuedAt > $1.issuedAt })
        #expect(listed.count == 3)
        #expect(try await store.certificates(matching: CertificateFilter()).count == 5)
        #expect(try await store.certificates(matching: CertificateFilter(spiffeID: "spiffe://cluster.local/ns/none/sa/none")).isEmpty)
        let limited = try await store.certificates(matching: CertificateFilter(spiffeID: cart, limit: 2))
        #expect(limited == Array(listed.prefix(2)))
    }

    @Test("listing filters by a notAfter window: after is exclusive, before is inclusive")
    func filterByNotAfterWindow() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        // Lifetimes of 1 to 6 hours from the same issuance time.
        let records = (1...6).map { hours in makeRecord(issuedAt: referenceTime, lifetime: Double(hours) * 3600) }
        try await store.recordIssued(records, audit: [])
        func serials(_ filter: CertificateFilter) async throws -> Set<String> {
            Set(try await store.certificates(matching: filter).map(\.serial))
        }
        let at2h = referenceTime.addingTimeInterval(2 * 3600)
        let at4h = referenceTime.addingTimeInterval(4 * 3600)

        let expiringBy2h = try await serials(CertificateFilter(notAfterBefore: at2h))
        #expect(expiringBy2h == Set(records.filter { $0.notAfter <= at2h }.map(\.serial)))
        #expect(expiringBy2h.count == 2)

        let after4h = try await serials(CertificateFilter(notAfterAfter: at4h))
        #expect(after4h == Set(records.filter { $0.notAfter > at4h }.map(\.serial)))
        #expect(after4h.count == 2)

        let window = try await serials(CertificateFilter(notAfterBefore: at4h, notAfterAfter: at2h))
        #expect(window == Set(records.filter { $0.notAfter > at2h && $0.notAfter <= at4h }.map(\.serial)))
        #expect(window.count == 2)
    }

    @Test("revoking sets status, time and reason, durably, and is audited")
    func revoke() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let record = makeRecord()
        let bystander = makeRecord()
        try await store.recordIssued([record, bystander], audit: [])
        let revokedAt = referenceTime.addingTimeInterval(600)

        let revoked = try await store.revoke(serial: record.serial.uppercased(), reason: "keyCompromise", at: revokedAt, actor: "admin")
        #expect(revoked.status == .revoked)
        #expect(revoked.revokedAt == revokedAt)
        #expect(revoked.revocationReason == "keyCompromise")
        #expect(revoked.serial == record.serial)
        #expect(revoked.spiffeID == record.spiffeID)
        #expect(revoked.notAfter == record.notAfter)

        let stored = try #require(try await store.certificate(serial: record.serial))
        #expect(stored == revoked)
        #expect(stored.displayStatus(at: referenceTime) == "revoked")
        #expect(try await store.certificate(serial: bystander.serial)?.status == .active)

        let events = try await store.events()
        let audit = try #require(events.last)
        #expect(audit.eventType == AuditEventType.certificateRevoked.rawValue)
        #expect(audit.subject == record.serial)
        #expect(audit.actor == "admin")
        #expect(audit.details.contains("keyCompromise"))
        #expect(try await store.verifyAuditChain() == .intact(events: events.count))
    }

    @Test("revoking without a reason leaves the reason empty")
    func revokeWithoutReason() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let record = makeRecord()
        try await store.recordIssued([record], audit: [])
        let revoked = try await store.revoke(serial: record.serial, reason: nil, at: referenceTime, actor: "admin")
        #expect(revoked.status == .revoked)
        #expect(revoked.revocationReason == nil)
    }

    @Test("revoking twice is a conflict and keeps the first revocation")
    func revokeTwice() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let record = makeRecord()
        try await store.recordIssued([record], audit: [])
        let first = try await store.revoke(serial: record.serial, reason: "superseded", at: referenceTime, actor: "admin")
        let eventsAfterFirst = try await store.events().count

        await expectStoreError(.conflict) {
            _ = try await store.revoke(serial: record.serial, reason: "keyCompromise", at: referenceTime.addingTimeInterval(60), actor: "admin")
        }
        #expect(try await store.certificate(serial: record.serial) == first)
        #expect(try await store.events().count == eventsAfterFirst)
    }

    @Test("revoking an unknown serial is notFound")
    func revokeUnknown() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        try await store.recordIssued([makeRecord()], audit: [])
        await expectStoreError(.notFound) {
            _ = try await store.revoke(serial: randomSerial(), reason: nil, at: referenceTime, actor: "admin")
        }
        #expect(try await store.events().isEmpty)
    }

    @Test("display status is active, expired after notAfter, or revoked")
    func displayStatus() {
        var record = makeRecord(issuedAt: referenceTime, lifetime: 3600)
        #expect(record.displayStatus(at: referenceTime) == "active")
        #expect(record.displayStatus(at: record.notAfter) == "expired")
        #expect(record.displayStatus(at: record.notAfter.addingTimeInterval(1)) == "expired")
        record.status = .revoked
        #expect(record.displayStatus(at: referenceTime) == "revoked")
        #expect(record.displayStatus(at: record.notAfter.addingTimeInterval(1)) == "revoked")
    }
}
