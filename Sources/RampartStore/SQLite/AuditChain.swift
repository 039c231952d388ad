import Crypto
import Foundation
import GRDB

/// Hashing and appending for the audit chain.
enum AuditChain {
    static let genesis = String(repeating: "0", count: 64)

    /// The hash of a row: SHA-256 over the previous hash and every field, length-prefixed.
    static func hash(previous: String, sequence: Int64, time: Date, type: String, actor: String, subject: String, details: String) -> String {
        var hasher = SHA256()
        for field in [previous, String(sequence), timestamp(time), type, actor, subject, details] {
            let bytes = Array(field.utf8)
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: bytes)
        }
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in hasher.finalize() {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Millisecond Unix time, so the hash does not depend on how dates round-trip through SQLite.
    static func timestamp(_ date: Date) -> String {
        String(Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    /// A flat string map as a JSON object with sorted keys.
    ///
    /// Written directly rather than through JSONSerialization, which costs more than the rest of
    /// the audit append on the issuance path; strings are escaped as RFC 8259 requires.
    static func detailsJSON(_ details: [String: String]) -> String {
        var out = "{"
        for (index, key) in details.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            appendQuoted(key, to: &out)
            out += ":"
            appendQuoted(details[key] ?? "", to: &out)
        }
        return out + "}"
    }

    private static func appendQuoted(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    /// Appends entries inside an open write transaction.
    static func append(_ entries: [AuditEntry], in db: Database) throws {
        guard !entries.isEmpty else { return }
        let last = try Row.fetchOne(try db.cachedStatement(sql: "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"))
        let insert = try db.cachedStatement(
            sql: "INSERT INTO audit_events (seq, time, event_type, actor, subject, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        var sequence: Int64 = last?["seq"] ?? 0
        var previous: String = last?["hash"] ?? genesis
        for entry in entries {
            sequence += 1
            // Stored times are truncated to milliseconds so that verification recomputes the same hash.
            let time = Date(timeIntervalSince1970: (entry.time.timeIntervalSince1970 * 1000).rounded() / 1000)
            let details = detailsJSON(entry.details)
            let hash = hash(
                previous: previous, sequence: sequence, time: time, type: entry.type.rawValue,
                actor: entry.actor, subject: entry.subject, details: details
            )
            try insert.execute(arguments: [sequence, StoredDate.text(time), entry.type.rawValue, entry.actor, entry.subject, details, previous, hash])
            previous = hash
        }
    }

    static func verify(_ events: [AuditEvent]) -> AuditVerification {
        var previous = genesis
        var expectedSequence: Int64 = 1
        for event in events {
            if event.sequence != expectedSequence {
                return .broken(sequence: event.sequence, reason: "sequence \(event.sequence) follows \(expectedSequence - 1): a row was deleted")
            }
            if event.previousHash != previous {
                return .broken(sequence: event.sequence, reason: "row \(event.sequence) does not link to the previous row's hash")
            }
            let recomputed = hash(
                previous: previous, sequence: event.sequence, time: event.time, type: event.eventType,
                actor: event.actor, subject: event.subject, details: event.details
            )
            if recomputed != event.hash {
                return .broken(sequence: event.sequence, reason: "row \(event.sequence) was altered: its hash does not match its contents")
            }
            previous = event.hash
            expectedSequence += 1
        }
        return .intact(events: events.count)
    }
}
