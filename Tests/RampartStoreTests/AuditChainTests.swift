import Foundation
import GRDB
import RampartStore
import Testing

@Suite("The hash-chained audit log")
struct AuditChainTests {
    @Test("audit details are stored as JSON that any parser reads back, whatever the strings hold")
    func detailsAreJSON() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let details = [
            "reason": "quote \" backslash \\ slash / newline \n tab \t bell \u{07} nul \u{00}",
            "spiffe_id": "spiffe://cluster.local/ns/ü/sa/日本",
            "": "empty key",
        ]
        try await store.append([AuditEntry(time: Date(), type: .issuanceRefused, actor: "ipv4:127.0.0.1:1", subject: "-", details: details)])
        let stored = try #require(try await store.events().last?.details)
        let parsed = try JSONSerialization.jsonObject(with: Data(stored.utf8)) as? [String: String]
        #expect(parsed == details)
        #expect(stored.hasPrefix("{\"\":"), "keys are sorted")
        #expect(try await store.verifyAuditChain() == .intact(events: 1))
    }

    /// Appends `batches` of entries in separate calls and returns how many were appended.
    func appendBatches(_ store: SQLiteStore, sizes: [Int]) async throws -> Int {
        var total = 0
        for (batch, size) in sizes.enumerated() {
            let entries = (0..<size).map { index in
                AuditEntry(
                    time: referenceTime.addingTimeInterval(Double(total + index)),
                    type: AuditEventType.allCases[(total + index) % AuditEventType.allCases.count],
                    actor: "actor-\(batch)",
                    subject: "subject-\(total + index)",
                    details: ["batch": "\(batch)", "index": "\(index)"]
                )
            }
            try await store.append(entries)
            total += size
        }
        return total
    }

    @Test("an empty log is intact")
    func emptyIsIntact() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        #expect(try await directory.open().verifyAuditChain() == .intact(events: 0))
    }

    @Test("events appended across several calls form one intact chain")
    func appendedEventsLink() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let total = try await appendBatches(store, sizes: [2, 3, 1, 4])
        let events = try await store.events()

        #expect(events.count == total)
        #expect(events.map(\.sequence) == Array(1...Int64(total)))
        #expect(events.first?.previousHash == String(repeating: "0", count: 64))
        for (previous, next) in zip(events, events.dropFirst()) {
            #expect(next.previousHash == previous.hash)
        }
        #expect(Set(events.map(\.hash)).count == total)
        #expect(events.map(\.subject) == (0..<total).map { "subject-\($0)" })
        #expect(events[0].details.contains("\"batch\""))
        #expect(try await store.verifyAuditChain() == .intact(events: total))
    }

    @Test("events with sub-millisecond times still verify")
    func fractionalTimesVerify() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        var generator = SystemRandomNumberGenerator()
        let entries = (0..<300).map { index in
            AuditEntry(
                time: referenceTime.addingTimeInterval(Double(index) + Double.random(in: 0..<1, using: &generator)),
                type: .issuanceRefused, actor: "test", subject: "s\(index)"
            )
        }
        try await store.append(entries)
        let events = try await store.events()
        #expect(events.count == entries.count)
        for (entry, event) in zip(entries, events) {
            #expect(abs(event.time.timeIntervalSince(entry.time)) < 0.001)
        }
        #expect(try await store.verifyAuditChain() == .intact(events: entries.count))
    }

    @Test("altering a row's details through another connection breaks the chain at that row", arguments: [1, 4, 10])
    func alteredDetails(sequence: Int64) async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let total = try await appendBatches(store, sizes: [2, 3, 1, 4])
        #expect(try await store.verifyAuditChain() == .intact(events: total))

        try await directory.rawConnection().write { db in
            try db.execute(sql: "UPDATE audit_events SET details = ? WHERE seq = ?", arguments: ["{\"forged\":\"yes\"}", sequence])
            #expect(db.changesCount == 1)
        }
        guard case .broken(let at, let reason) = try await store.verifyAuditChain() else {
            Issue.record("tampering was not detected")
            return
        }
        #expect(at == sequence)
        #expect(!reason.isEmpty)
    }

    @Test("altering the actor, subject, type or time of a row breaks the chain at that row", arguments: ["actor", "subject", "event_type", "time"])
    func alteredOtherFields(column: String) async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        _ = try await appendBatches(store, sizes: [3, 3])
        let value: DatabaseValue = column == "time" ? referenceTime.addingTimeInterval(-86400).databaseValue : "forged".databaseValue
        try await directory.rawConnection().write { db in
            try db.execute(sql: "UPDATE audit_events SET \(column) = ? WHERE seq = 3", arguments: [value])
        }
        guard case .broken(let at, _) = try await store.verifyAuditChain() else {
            Issue.record("changing \(column) was not detected")
            return
        }
        #expect(at == 3)
    }

    @Test("rewriting a row together with its hash breaks the link at the next row")
    func rewrittenHash() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        _ = try await appendBatches(store, sizes: [5])
        try await directory.rawConnection().write { db in
            try db.execute(sql: "UPDATE audit_events SET details = '{}', hash = ? WHERE seq = 2", arguments: [String(repeating: "ab", count: 32)])
        }
        guard case .broken(let at, _) = try await store.verifyAuditChain() else {
            Issue.record("the rewrite was not detected")
            return
        }
        // Row 2 no longer matches its own contents; it is reported first.
        #expect(at == 2)
    }

    @Test("deleting a middle row breaks the chain where the gap is")
    func deletedRow() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let total = try await appendBatches(store, sizes: [2, 3, 1])
        try await directory.rawConnection().write { db in
            try db.execute(sql: "DELETE FROM audit_events WHERE seq = 3")
        }
        #expect(try await store.events().count == total - 1)
        guard case .broken(let at, let reason) = try await store.verifyAuditChain() else {
            Issue.record("the deletion was not detected")
            return
        }
        #expect(at == 4, "the first row after the gap is reported")
        #expect(reason.contains("deleted"))
    }

    @Test("after tampering, new appends do not hide the break")
    func appendAfterTampering() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        _ = try await appendBatches(store, sizes: [4])
        try await directory.rawConnection().write { db in
            try db.execute(sql: "UPDATE audit_events SET subject = 'forged' WHERE seq = 2")
        }
        _ = try await appendBatches(store, sizes: [2])
        guard case .broken(let at, _) = try await store.verifyAuditChain() else {
            Issue.record("tampering was hidden by later appends")
            return
        }
        #expect(at == 2)
    }
}
