import Foundation
import Synchronization

/// Writes one JSON line per request or TCP connection, in the spirit of Envoy's JSON access log
/// with Istio's fields.
public final class AccessLog: Sendable {
    private let handle: Mutex<FileHandle?>

    /// Logs to a file (appended, created with mode 0644), to standard output when `path` is `-`,
    /// or nowhere when `path` is nil.
    public init(path: String?) throws(ProxyError) {
        guard let path else {
            handle = Mutex(nil)
            return
        }
        if path == "-" {
            handle = Mutex(FileHandle.standardOutput)
            return
        }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]) else {
                throw ProxyError(.badConfiguration, "--access-log \(path): cannot create the file; check that its directory exists and is writable")
            }
        }
        guard let file = FileHandle(forWritingAtPath: path) else {
            throw ProxyError(.badConfiguration, "--access-log \(path): cannot open the file for writing")
        }
        file.seekToEndOfFile()
        handle = Mutex(file)
    }

    /// Writes the record's line.
    public func write(_ record: RequestRecord) {
        let line = Self.line(record)
        handle.withLock { file in
            file?.write(Data((line + "\n").utf8))
        }
    }

    /// RFC 3339 with milliseconds, UTC.
    static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The JSON line for a record: keys sorted, absent values as null.
    public static func line(_ record: RequestRecord) -> String {
        func text(_ value: String?) -> Any { value.map { $0 as Any } ?? NSNull() }
        let object: [String: Any] = [
            "start_time": record.startTime.formatted(timestampStyle),
            "reporter": record.reporter.rawValue,
            "protocol": record.protocolName,
            "method": text(record.method),
            "path": text(record.path),
            "authority": text(record.authority),
            "request_id": text(record.requestID),
            "user_agent": text(record.userAgent),
            "response_code": record.responseCode,
            "response_flags": record.responseFlags,
            "response_code_details": text(record.responseDetails),
            "bytes_received": record.bytesReceived,
            "bytes_sent": record.bytesSent,
            "duration": Int((record.duration * 1000).rounded()),
            "downstream_remote_address": text(record.sourceAddress),
            "upstream_host": text(record.upstreamHost),
            "source_principal": text(record.sourcePrincipal),
            "source_workload": text(record.sourceWorkload),
            "source_namespace": text(record.sourceNamespace),
            "destination_principal": text(record.destinationPrincipal),
            "destination_workload": text(record.destinationWorkload),
            "destination_namespace": text(record.destinationNamespace),
            "destination_service": text(record.destinationService),
            "connection_security_policy": record.connectionSecurityPolicy,
            "authz_policy": text(record.policy),
            "authz_rule": record.rule.map { $0 as Any } ?? NSNull(),
            "authz_dry_run": record.dryRun,
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
