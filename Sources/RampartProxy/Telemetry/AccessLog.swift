import Foundation
import Synchronization

/// Writes one JSON line per request or TCP connection, in the spirit of Envoy's JSON access log
/// with Istio's fields.
public final class AccessLog: Sendable {
    private let handle: Mutex<FileHandle?>

    /// Logs to a file (appended, created with mode 0644), to standard output when `path` is `-`,
    /// or nowhere when `path` is nil or `off`.
    public init(path: String?) throws(ProxyError) {
        guard let path, path != "off" else {
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

    /// Whether lines are written anywhere.
    public var isEnabled: Bool { handle.withLock { $0 != nil } }

    /// Writes the record's line.
    public func write(_ record: RequestRecord) {
        guard isEnabled else { return }
        let line = Self.line(record)
        handle.withLock { file in
            file?.write(Data((line + "\n").utf8))
        }
    }

    /// RFC 3339 with milliseconds, UTC.
    static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The JSON line for a record, its keys in a fixed order, absent values as null.
    ///
    /// Written field by field: this runs once per request, and a general JSON serializer with
    /// sorted keys cost more than the rest of the request.
    public static func line(_ record: RequestRecord) -> String {
        var json = JSONLine()
        json.field("start_time", record.startTime.formatted(timestampStyle))
        json.field("reporter", record.reporter.rawValue)
        json.field("protocol", record.protocolName)
        json.field("method", record.method)
        json.field("path", record.path)
        json.field("authority", record.authority)
        json.field("request_id", record.requestID)
        json.field("user_agent", record.userAgent)
        json.field("response_code", record.responseCode)
        json.field("response_flags", record.responseFlags)
        json.field("response_code_details", record.responseDetails)
        json.field("bytes_received", record.bytesReceived)
        json.field("bytes_sent", record.bytesSent)
        json.field("duration", Int((record.duration * 1000).rounded()))
        json.field("downstream_remote_address", record.sourceAddress)
        json.field("upstream_host", record.upstreamHost)
        json.field("source_principal", record.sourcePrincipal)
        json.field("source_workload", record.sourceWorkload)
        json.field("source_namespace", record.sourceNamespace)
        json.field("destination_principal", record.destinationPrincipal)
        json.field("destination_workload", record.destinationWorkload)
        json.field("destination_namespace", record.destinationNamespace)
        json.field("destination_service", record.destinationService)
        json.field("connection_security_policy", record.connectionSecurityPolicy)
        json.field("authz_policy", record.policy)
        json.field("authz_rule", record.rule)
        json.field("authz_dry_run", record.dryRun)
        return json.finish()
    }
}

/// A one-line JSON object built field by field, strings escaped as RFC 8259 requires.
struct JSONLine {
    private var text = "{"

    mutating func field(_ name: String, _ value: String?) {
        key(name)
        if let value { string(value) } else { text += "null" }
    }

    mutating func field(_ name: String, _ value: Int?) {
        key(name)
        text += value.map(String.init) ?? "null"
    }

    mutating func field(_ name: String, _ values: [String]) {
        key(name)
        text += "["
        for (index, value) in values.enumerated() {
            if index > 0 { text += "," }
            string(value)
        }
        text += "]"
    }

    mutating func finish() -> String {
        text += "}"
        return text
    }

    private var first = true

    private mutating func key(_ name: String) {
        if !first { text += "," }
        first = false
        string(name)
        text += ":"
    }

    private mutating func string(_ value: String) {
        text += "\""
        // Most values need no escaping: append them whole.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            text += value
            text += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                text += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}
