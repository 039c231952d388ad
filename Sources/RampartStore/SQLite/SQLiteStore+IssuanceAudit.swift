import Foundation
import GRDB

extension SQLiteStore {
    /// What the certificate and token tables hold that the audit log does not account for: rows
    /// added, changed, removed, un-revoked or un-spent outside Rampart. The chain itself cannot show
    /// these, since they leave the log untouched. Empty when the tables and the log agree.
    public func issuanceDisagreements() async throws -> [String] {
        try await pool.read { db in
            var issued: [String: (sequence: Int64, spiffeID: String?, notAfter: String?, key: String?)] = [:]
            var revoked: [String: Int64] = [:]
            var tokensCreated: [String: Int64] = [:]
            var tokensUsed: [String: Int64] = [:]
            let types = [
                AuditEventType.certificateIssued, .certificateRevoked, .tokenCreated, .tokenUsed,
            ].map(\.rawValue)
            let events = try Row.fetchCursor(
                db, sql: "SELECT seq, event_type, subject, details FROM audit_events WHERE event_type IN (?, ?, ?, ?) ORDER BY seq",
                arguments: StatementArguments(types))
            while let event = try events.next() {
                let sequence: Int64 = event["seq"]
                let subject: String = event["subject"]
                switch event["event_type"] as String {
                case AuditEventType.certificateIssued.rawValue:
                    let details = (try? JSONSerialization.jsonObject(with: Data((event["details"] as String).utf8))) as? [String: Any]
                    issued[subject] = (
                        sequence, details?["spiffe_id"] as? String, details?["not_after"] as? String,
                        details?["public_key_sha256"] as? String
                    )
                case AuditEventType.certificateRevoked.rawValue:
                    revoked[subject] = sequence
                case AuditEventType.tokenCreated.rawValue:
                    tokensCreated[subject] = sequence
                default:
                    tokensUsed[subject] = sequence
                }
            }
            var problems: [String] = []
            var stored = Set<String>()
            let certificates = try Row.fetchCursor(
                db, sql: "SELECT serial, spiffe_id, status, not_after, public_key_sha256 FROM issued_certificates")
            while let row = try certificates.next() {
                let serial: String = row["serial"]
                let spiffeID: String = row["spiffe_id"]
                let status: String = row["status"]
                stored.insert(serial)
                guard let event = issued[serial] else {
                    problems.append("certificate \(serial) (\(spiffeID)) is stored, but no audit event records its issuance: it was added outside Rampart")
                    continue
                }
                if let recorded = event.spiffeID, recorded != spiffeID {
                    problems.append(
                        "certificate \(serial) is stored for \(spiffeID), but its issuance (audit event \(event.sequence)) was for \(recorded): it was changed outside Rampart")
                }
                // Events written before these fields were recorded carry neither.
                let notAfter: Date = row["not_after"]
                if let recorded = event.notAfter, recorded != notAfter.formatted(.iso8601) {
                    problems.append(
                        "certificate \(serial) is stored as valid until \(notAfter.formatted(.iso8601)), but its issuance (audit event \(event.sequence)) recorded \(recorded): it was changed outside Rampart")
                }
                if let recorded = event.key, recorded != row["public_key_sha256"] as String {
                    problems.append(
                        "certificate \(serial) is stored with another public key than its issuance (audit event \(event.sequence)) recorded: it was changed outside Rampart")
                }
                if status == CertificateStatus.revoked.rawValue, revoked[serial] == nil {
                    problems.append("certificate \(serial) is stored as revoked, but no revocation is recorded: it was changed outside Rampart")
                } else if status != CertificateStatus.revoked.rawValue, let sequence = revoked[serial] {
                    problems.append(
                        "certificate \(serial) was revoked (audit event \(sequence)), but is stored as \(status): it was un-revoked outside Rampart")
                }
            }
            for (serial, event) in issued where !stored.contains(serial) {
                problems.append("certificate \(serial) was issued (audit event \(event.sequence)) and is no longer stored: it was removed outside Rampart")
            }
            // Token events name a token by the first 16 hex digits of its hash.
            var storedTokens = Set<String>()
            let tokens = try Row.fetchCursor(db, sql: "SELECT token_sha256, used_at FROM bootstrap_tokens")
            while let row = try tokens.next() {
                let prefix = String((row["token_sha256"] as String).prefix(16))
                let used = (row["used_at"] as DatabaseValue).isNull == false
                storedTokens.insert(prefix)
                if tokensCreated[prefix] == nil {
                    problems.append("token \(prefix)… is stored, but no audit event records its creation: it was added outside Rampart")
                }
                if used, tokensUsed[prefix] == nil {
                    problems.append("token \(prefix)… is stored as used, but no use is recorded: it was changed outside Rampart")
                } else if !used, let sequence = tokensUsed[prefix] {
                    problems.append("token \(prefix)… was used (audit event \(sequence)), but is stored as unused: it was reset outside Rampart, so it could be spent again")
                }
            }
            for (prefix, sequence) in tokensCreated where !storedTokens.contains(prefix) {
                problems.append("token \(prefix)… was created (audit event \(sequence)) and is no longer stored: it was removed outside Rampart")
            }
            return problems.sorted()
        }
    }
}
