import Crypto
import Foundation
import GRDB
import RampartIdentity
import RampartStore
import Testing

/// A fresh directory under the system temporary directory holding one store file.
/// Call `remove()` in a `defer`.
struct StoreDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("rampart-store-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    /// The database file's path.
    var databasePath: String { (path as NSString).appendingPathComponent("rampart.sqlite") }

    /// Opens (or reopens) the store on the database file.
    func open() throws -> SQLiteStore { try SQLiteStore(path: databasePath) }

    /// A separate raw GRDB connection on the same file, bypassing the store.
    func rawConnection() throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        return try DatabaseQueue(path: databasePath, configuration: configuration)
    }

    /// Every byte of the database file and its WAL and shared-memory companions.
    func allDatabaseBytes() throws -> [UInt8] {
        var bytes: [UInt8] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: path) {
            bytes += Array(try Data(contentsOf: URL(fileURLWithPath: (path as NSString).appendingPathComponent(name))))
        }
        return bytes
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A reference instant in whole milliseconds, since the store keeps milliseconds.
let referenceTime = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z

/// A random 16-byte positive serial in lowercase hex, like the ones the CA issues.
func randomSerial() -> String {
    var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
    bytes[0] = (bytes[0] & 0x7F) | 0x40
    return bytes.map { String(format: "%02x", $0) }.joined()
}

/// A certificate record with plausible content; dates are whole seconds so they round-trip exactly.
func makeRecord(
    serial: String = randomSerial(),
    spiffeID: String = "spiffe://cluster.local/ns/shop/sa/cart",
    issuedAt: Date = referenceTime,
    lifetime: TimeInterval = 3600
) -> CertificateRecord {
    CertificateRecord(
        serial: serial,
        spiffeID: spiffeID,
        publicKeySHA256: sha256Hex(serial),
        notBefore: issuedAt.addingTimeInterval(-60),
        notAfter: issuedAt.addingTimeInterval(lifetime),
        issuedAt: issuedAt,
        callerIdentity: spiffeID,
        authMethod: .mtls,
        chainPEM: "-----BEGIN CERTIFICATE-----\n\(serial)\n-----END CERTIFICATE-----\n"
    )
}

/// The audit entry the CA writes alongside an issued certificate.
func issuedEntry(for record: CertificateRecord) -> AuditEntry {
    AuditEntry(time: record.issuedAt, type: .certificateIssued, actor: record.callerIdentity, subject: record.serial, details: ["spiffe_id": record.spiffeID])
}

/// SHA-256 of a string's UTF-8 bytes, lowercase hex.
func sha256Hex(_ text: String) -> String {
    SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
}

/// Whether `needle` occurs anywhere in `haystack`.
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, needle.count <= haystack.count else { return false }
    let first = needle[0]
    var index = 0
    while index <= haystack.count - needle.count {
        if haystack[index] == first, Array(haystack[index..<(index + needle.count)]) == needle { return true }
        index += 1
    }
    return false
}

/// Asserts that `body` throws a `StoreError` with `code`.
func expectStoreError(_ code: StoreError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected StoreError \(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as StoreError {
        #expect(error.code == code, "expected \(code), got \(error.code): \(error.reason)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected StoreError \(code), got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
}
