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
        var bytes = Self.lineBytes(record)
        bytes.append(UInt8(ascii: "\n"))
        let data = Data(bytes)
        handle.withLock { file in
            file?.write(data)
        }
    }

    /// The JSON line for a record, its keys in a fixed order, absent values as null.
    public static func line(_ record: RequestRecord) -> String {
        String(decoding: lineBytes(record), as: UTF8.self)
    }

    /// The line as UTF-8 bytes, without its newline.
    ///
    /// Written field by field into one buffer: this runs once per request, and a general JSON
    /// serializer with sorted keys cost more than the rest of the request.
    static func lineBytes(_ record: RequestRecord) -> [UInt8] {
        var json = JSONLine()
        json.timestampField("start_time", record.startTime)
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

/// A one-line JSON object built field by field as UTF-8 bytes, strings escaped as RFC 8259 requires.
struct JSONLine {
    private(set) var bytes: [UInt8]
    private var first = true

    init() {
        bytes = []
        bytes.reserveCapacity(1024)
        bytes.append(UInt8(ascii: "{"))
    }

    mutating func field(_ name: String, _ value: String?) {
        key(name)
        if let value { string(value) } else { literal("null") }
    }

    mutating func field(_ name: String, _ value: Int?) {
        key(name)
        literal(value.map(String.init) ?? "null")
    }

    mutating func field(_ name: String, _ values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// A time as RFC 3339 in UTC with milliseconds, e.g. `"2027-01-15T08:00:00.250Z"`.
    mutating func timestampField(_ name: String, _ date: Date) {
        key(name)
        // Whole microseconds first, so that a binary fraction just below a millisecond boundary
        // (.001 stored as .000999…) keeps that millisecond; then milliseconds, truncated. Every
        // value here is a whole number a Double holds exactly.
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        let totalMillis = (micros / 1000).rounded(.down)
        let seconds = (totalMillis / 1000).rounded(.down)
        let millis = Int(totalMillis - seconds * 1000)
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        bytes.append(UInt8(ascii: "\""))
        digits(Int(parts.tm_year) + 1900, width: 4)
        bytes.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, width: 2)
        bytes.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), width: 2)
        bytes.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), width: 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), width: 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), width: 2)
        bytes.append(UInt8(ascii: "."))
        digits(millis, width: 3)
        bytes.append(UInt8(ascii: "Z"))
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    private mutating func key(_ name: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func literal(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    /// A non-negative number in decimal, zero-padded to `width` digits.
    private mutating func digits(_ value: Int, width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = max(0, value)
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8((rest / divisor) % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    /// A JSON string. Bytes of multi-byte UTF-8 sequences pass through: the value is valid UTF-8,
    /// and only quotes, backslashes and control characters need escapes.
    private mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most values need no escape: copy them whole.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            bytes.append(contentsOf: value.utf8)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): literal("\\\"")
            case UInt8(ascii: "\\"): literal("\\\\")
            case UInt8(ascii: "\n"): literal("\\n")
            case UInt8(ascii: "\r"): literal("\\r")
            case UInt8(ascii: "\t"): literal("\\t")
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                literal("\\u00")
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
