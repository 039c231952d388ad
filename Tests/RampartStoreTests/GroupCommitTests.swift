import Foundation
import RampartStore
import Testing

@Suite("Group commit of issued certificates")
struct GroupCommitTests {
    @Test("200 concurrent recordIssued calls all return and all 200 rows and audit events exist")
    func concurrentCallsAllCommit() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let records = (0..<200).map { index in
            makeRecord(spiffeID: "spiffe://cluster.local/ns/load/sa/w\(index % 7)", issuedAt: referenceTime.addingTimeInterval(Double(index)))
        }

        let returned = try await withThrowingTaskGroup(of: String.self) { group in
            for record in records {
                group.addTask {
                    try await store.recordIssued([record], audit: [issuedEntry(for: record)])
                    return record.serial
                }
            }
            var serials: [String] = []
            for try await serial in group { serials.append(serial) }
            return serials
        }
        #expect(Set(returned) == Set(records.map(\.serial)))
        #expect(returned.count == 200)

        let stored = try await store.certificates(matching: CertificateFilter())
        #expect(stored.count == 200)
        #expect(Set(stored.map(\.serial)) == Set(records.map(\.serial)))
        for record in records.prefix(20) {
            #expect(try await store.certificate(serial: record.serial) == record)
        }
        let events = try await store.events()
        #expect(events.count == 200)
        #expect(Set(events.map(\.subject)) == Set(records.map(\.serial)))
        #expect(try await store.verifyAuditChain() == .intact(events: 200))
    }

    @Test("a duplicate serial fails its call and keeps every row stored before")
    func duplicateFailsAlone() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let earlier = (0..<10).map { _ in makeRecord() }
        try await store.recordIssued(earlier, audit: earlier.map(issuedEntry))

        let duplicate = makeRecord(serial: earlier[3].serial, spiffeID: "spiffe://cluster.local/ns/evil/sa/twin")
        let fresh = makeRecord()
        await #expect(throws: (any Error).self) {
            try await store.recordIssued([fresh, duplicate], audit: [issuedEntry(for: fresh), issuedEntry(for: duplicate)])
        }

        // The failed batch left nothing behind, not even its good record or its audit events.
        #expect(try await store.certificate(serial: fresh.serial) == nil)
        let stored = try await store.certificates(matching: CertificateFilter())
        #expect(Set(stored.map(\.serial)) == Set(earlier.map(\.serial)))
        #expect(try await store.certificate(serial: earlier[3].serial) == earlier[3])
        #expect(try await store.verifyAuditChain() == .intact(events: 10))

        // The store keeps working afterwards.
        try await store.recordIssued([fresh], audit: [issuedEntry(for: fresh)])
        #expect(try await store.certificate(serial: fresh.serial) == fresh)
        #expect(try await store.verifyAuditChain() == .intact(events: 11))
    }

    @Test("under concurrency, a duplicate fails only its own call, and each call is all-or-nothing")
    func duplicateAmongConcurrentCalls() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let earlier = (0..<20).map { _ in makeRecord() }
        try await store.recordIssued(earlier, audit: earlier.map(issuedEntry))

        let duplicate = makeRecord(serial: earlier[7].serial, spiffeID: "spiffe://cluster.local/ns/evil/sa/twin")
        let good = (0..<100).map { _ in makeRecord() }
        let calls: [CertificateRecord] = Array(good.prefix(50)) + [duplicate] + Array(good.suffix(50))

        let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
            for (index, record) in calls.enumerated() {
                group.addTask {
                    do {
                        try await store.recordIssued([record], audit: [issuedEntry(for: record)])
                        return (record.serial + "#\(index)", true)
                    } catch {
                        return (record.serial + "#\(index)", false)
                    }
                }
            }
            var results: [String: Bool] = [:]
            for await (key, ok) in group { results[key] = ok }
            return results
        }
        #expect(outcomes.count == calls.count)
        #expect(outcomes[duplicate.serial + "#50"] == false, "the duplicate call must fail")

        // Every call that returned has its row; every call that threw has none (other than the original).
        for (index, record) in calls.enumerated() where record.serial != duplicate.serial {
            guard let succeeded = outcomes[record.serial + "#\(index)"] else {
                Issue.record("call \(index) has no outcome")
                continue
            }
            let stored = try await store.certificate(serial: record.serial)
            #expect((stored != nil) == succeeded, "call \(index) returned \(succeeded) but its row is \(stored == nil ? "absent" : "present")")
        }
        for record in earlier {
            #expect(try await store.certificate(serial: record.serial) == record)
        }
        let successes = outcomes.values.filter { $0 }.count
        #expect(successes == calls.count - 1, "only the duplicate call may fail")
        #expect(try await store.certificates(matching: CertificateFilter()).count == earlier.count + successes)
        #expect(try await store.verifyAuditChain() == .intact(events: earlier.count + successes))
    }

    @Test("recordIssued with several records and audit entries commits them together")
    func batchOfSeveral() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let records = (0..<5).map { index in makeRecord(issuedAt: referenceTime.addingTimeInterval(Double(index))) }
        try await store.recordIssued(records, audit: records.map(issuedEntry))
        #expect(Set(try await store.certificates(matching: CertificateFilter()).map(\.serial)) == Set(records.map(\.serial)))
        let events = try await store.events()
        #expect(events.map(\.subject) == records.map(\.serial))
        #expect(events.map(\.sequence) == Array(1...5))
    }
}
