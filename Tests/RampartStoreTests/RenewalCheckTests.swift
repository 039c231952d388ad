import Foundation
import RampartStore
import Testing

@Suite("The renewing certificate checked inside the issuance commit")
struct RenewalCheckTests {
    @Test("a renewal by an active certificate commits; the serial may be written in any accepted form")
    func activeRenews() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let current = makeRecord()
        try await store.recordIssued([current], audit: [issuedEntry(for: current)])

        let renewed = makeRecord(issuedAt: referenceTime.addingTimeInterval(60))
        try await store.recordIssued([renewed], audit: [issuedEntry(for: renewed)], renewing: current.serial)
        let again = makeRecord(issuedAt: referenceTime.addingTimeInterval(120))
        let spelled = "0x" + stride(from: 0, to: current.serial.count, by: 2).map {
            let start = current.serial.index(current.serial.startIndex, offsetBy: $0)
            return String(current.serial[start..<current.serial.index(start, offsetBy: 2)]).uppercased()
        }.joined(separator: ":")
        try await store.recordIssued([again], audit: [issuedEntry(for: again)], renewing: spelled)

        #expect(try await store.certificate(serial: renewed.serial) == renewed)
        #expect(try await store.certificate(serial: again.serial) == again)
        #expect(try await store.verifyAuditChain() == .intact(events: 3))
    }

    @Test("a renewal by a revoked certificate is refused with the revocation, and writes nothing")
    func revokedRefused() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let current = makeRecord()
        try await store.recordIssued([current], audit: [issuedEntry(for: current)])
        let revokedAt = referenceTime.addingTimeInterval(30)
        _ = try await store.revoke(serial: current.serial, reason: "key compromise", at: revokedAt, actor: "admin")

        let renewed = makeRecord(issuedAt: referenceTime.addingTimeInterval(60))
        let error = await #expect(throws: RenewalRefusal.self) {
            try await store.recordIssued([renewed], audit: [issuedEntry(for: renewed)], renewing: current.serial)
        }
        #expect(error == RenewalRefusal(serial: current.serial, reason: .revoked(at: revokedAt, reason: "key compromise")))
        #expect(try await store.certificate(serial: renewed.serial) == nil)
        // The issuance and the revocation, nothing of the refused call.
        #expect(try await store.verifyAuditChain() == .intact(events: 2))
    }

    @Test("a renewal by a certificate the store never recorded is refused as unknown")
    func unknownRefused() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let stranger = randomSerial()
        let renewed = makeRecord()
        let error = await #expect(throws: RenewalRefusal.self) {
            try await store.recordIssued([renewed], audit: [issuedEntry(for: renewed)], renewing: stranger)
        }
        #expect(error == RenewalRefusal(serial: stranger, reason: .unknown))
        #expect(try await store.certificates(matching: CertificateFilter()).isEmpty)
        #expect(try await store.events().isEmpty)
    }

    @Test("among concurrent calls, only the ones renewing with a revoked certificate are refused")
    func refusedAloneInABatch() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let active = makeRecord()
        let revoked = makeRecord()
        try await store.recordIssued([active, revoked], audit: [issuedEntry(for: active), issuedEntry(for: revoked)])
        _ = try await store.revoke(serial: revoked.serial, reason: nil, at: referenceTime, actor: "admin")

        let calls = (0..<60).map { index in (record: makeRecord(), renewing: index % 10 == 3 ? revoked.serial : active.serial) }
        let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
            for call in calls {
                group.addTask {
                    do {
                        try await store.recordIssued([call.record], audit: [issuedEntry(for: call.record)], renewing: call.renewing)
                        return (call.record.serial, true)
                    } catch {
                        return (call.record.serial, false)
                    }
                }
            }
            var results: [String: Bool] = [:]
            for await (serial, committed) in group { results[serial] = committed }
            return results
        }
        for call in calls {
            let expected = call.renewing == active.serial
            #expect(outcomes[call.record.serial] == expected)
            #expect((try await store.certificate(serial: call.record.serial) != nil) == expected)
        }
        #expect(try await store.verifyAuditChain() == .intact(events: 2 + 1 + 54))
    }
}
