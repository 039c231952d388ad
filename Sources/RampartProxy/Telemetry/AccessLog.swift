import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Writes one line per request or TCP connection: a JSON object, in the spirit of Envoy's JSON
/// access log with Istio's fields, or Istio's default text format.
///
/// Lines are buffered, as Envoy buffers its file access logs, and written together: when the
/// buffer passes 64 KiB, once the oldest buffered line is a flush interval (1 s by default) old,
/// checked on each line and by a timer four times an interval, and by ``flush()``, which the
/// proxy calls when it shuts down. A line reaches the file at most about 1¼ intervals after its
/// request.
public final class AccessLog: Sendable {
    private struct Output {
        /// The file descriptor, or -1 when lines go nowhere.
        var descriptor: Int32
        /// Whether this log opened the descriptor (and closes it).
        var owned: Bool
        /// Lines not yet written.
        var pending: [UInt8]
        /// When the oldest pending line was added.
        var oldest: NIODeadline
    }

    private static let bufferLimit = 64 * 1024
    private let output: Mutex<Output>
    private let enabled: Bool
    private let encoding: Encoding
    private let flushInterval: TimeAmount
    private let timer: Mutex<RepeatedTask?> = Mutex(nil)

    /// Logs to a file (appended, created with mode 0644), to standard output when `path` is `-`,
    /// or nowhere when `path` is nil or `off`. Buffered lines are written at least every
    /// `flushInterval`. Lines are JSON objects, or Istio's text format with `.text`.
    public init(path: String?, encoding: Encoding = .json, flushInterval: TimeAmount = .seconds(1)) throws(ProxyError) {
        self.flushInterval = flushInterval
        self.encoding = encoding
        var output = Output(descriptor: -1, owned: false, pending: [], oldest: .now())
        if let path, path != "off" {
            if path == "-" {
                output.descriptor = STDOUT_FILENO
            } else {
                let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
                guard descriptor >= 0 else {
                    let reason = String(cString: strerror(errno))
                    throw ProxyError(.badConfiguration, "--access-log \(path): cannot open the file for appending (\(reason)); check that its directory exists and is writable")
                }
                output.descriptor = descriptor
                output.owned = true
            }
            output.pending.reserveCapacity(Self.bufferLimit + 2048)
        }
        self.output = Mutex(output)
        enabled = output.descriptor >= 0
        guard enabled else { return }
        let period = max(TimeAmount.nanoseconds(flushInterval.nanoseconds / 4), .milliseconds(10))
        let task = MultiThreadedEventLoopGroup.singleton.any().scheduleRepeatedTask(initialDelay: period, delay: period) { [weak self] _ in
            self?.flushIfDue()
        }
        timer.withLock { $0 = task }
    }

    deinit {
        timer.withLock { $0?.cancel() }
        output.withLock { output in
            Self.drain(&output)
            if output.owned { close(output.descriptor) }
        }
    }

    /// Whether lines are written anywhere.
    public var isEnabled: Bool { enabled }

    /// Adds the record's line, and writes the buffer when it is full or an interval old.
    public func write(_ record: RequestRecord) {
        guard enabled else { return }
        // Built outside the lock (the event loops of a proxy share this log, and a line takes
        // longer to build than to copy), then copied into the buffer from the line's own memory.
        let now = NIODeadline.now()
        let interval = flushInterval
        let append = { (line: UnsafeBufferPointer<UInt8>) in
            self.output.withLock { output in
                if output.pending.isEmpty { output.oldest = now }
                output.pending.append(contentsOf: line)
                output.pending.append(UInt8(ascii: "\n"))
                if output.pending.count >= Self.bufferLimit || now - output.oldest >= interval {
                    Self.drain(&output)
                }
            }
        }
        switch encoding {
        case .json: Self.withLine(record, append)
        case .text:
            var line = Self.textLine(record)
            line.withUTF8 { append($0) }
        }
    }

    /// Writes every buffered line now.
    public func flush() {
        output.withLock { output in Self.drain(&output) }
    }

    private func flushIfDue() {
        let now = NIODeadline.now()
        let interval = flushInterval
        output.withLock { output in
            if !output.pending.isEmpty && now - output.oldest >= interval { Self.drain(&output) }
        }
    }

    /// Writes the pending bytes whole (retrying short writes and interruptions); a failing
    /// descriptor drops them rather than growing the buffer without bound.
    private static func drain(_ output: inout Output) {
        guard output.descriptor >= 0, !output.pending.isEmpty else { return }
        let descriptor = output.descriptor
        output.pending.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
        output.pending.removeAll(keepingCapacity: true)
    }

    /// The JSON line for a record, its keys in a fixed order, absent values as null.
    public static func line(_ record: RequestRecord) -> String {
        withLine(record) { String(decoding: $0, as: UTF8.self) }
    }

    /// Gives `body` the line as UTF-8 bytes, without its newline.
    ///
    /// Written field by field into one buffer: this runs once per request, and a general JSON
    /// serializer with sorted keys cost more than the rest of the request.
    static func withLine<Result>(_ record: RequestRecord, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        var json = JSONLine()
        json.timestampField("start_time", record.startTime)
        // Every HTTP route is Istio's `default`: there are no VirtualServices; TCP has none.
        json.field("route_name", record.protocolName == "TCP" ? nil : "default")
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
        // Istio's JSON format has these; Rampart does not track them, so they are null.
        json.field("connection_termination_details", nil as String?)
        json.field("upstream_transport_failure_reason", nil as String?)
        // As Istio's format reads it, from the response header: a string of milliseconds.
        json.field("upstream_service_time", record.upstreamServiceTime.map { String($0) })
        json.field("x_forwarded_for", record.forwardedFor)
        json.field("bytes_received", record.bytesReceived)
        json.field("bytes_sent", record.bytesSent)
        json.field("duration", Int((record.duration * 1000).rounded()))
        json.field("downstream_remote_address", record.sourceAddress)
        json.field("downstream_local_address", record.downstreamLocalAddress)
        json.field("requested_server_name", record.requestedServerName)
        json.field("upstream_host", record.upstreamHost)
        json.field("upstream_cluster", record.upstreamCluster)
        json.field("upstream_local_address", nil as String?)
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
        return json.finish(body)
    }
}

/// A one-line JSON object built field by field as UTF-8 bytes, strings escaped as RFC 8259 requires.
///
/// The bytes go into memory of its own, grown as needed, rather than an array: a line has some
/// forty fields and a hundred small writes, each of which an array would check for uniqueness
/// and capacity. Not copyable, so that the memory has one owner, which frees it.
struct JSONLine: ~Copyable {
    private var storage: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity = 1024
    private var first = true

    init() {
        storage = .allocate(capacity: capacity)
        byte(UInt8(ascii: "{"))
    }

    deinit { storage.deallocate() }

    mutating func field(_ name: StaticString, _ value: String?) {
        key(name)
        if let value { string(value) } else { raw("null") }
    }

    mutating func field(_ name: StaticString, _ value: Int?) {
        key(name)
        if let value { number(value) } else { raw("null") }
    }

    mutating func field(_ name: StaticString, _ values: [String]) {
        key(name)
        byte(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { byte(UInt8(ascii: ",")) }
            string(value)
        }
        byte(UInt8(ascii: "]"))
    }

    /// A time as RFC 3339 in UTC with milliseconds, e.g. `"2027-01-15T08:00:00.250Z"`.
    mutating func timestampField(_ name: StaticString, _ date: Date) {
        key(name)
        let (parts, millis) = AccessLog.utc(date)
        byte(UInt8(ascii: "\""))
        digits(Int(parts.tm_year) + 1900, width: 4)
        byte(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, width: 2)
        byte(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), width: 2)
        byte(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), width: 2)
        byte(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), width: 2)
        byte(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), width: 2)
        byte(UInt8(ascii: "."))
        digits(millis, width: 3)
        byte(UInt8(ascii: "Z"))
        byte(UInt8(ascii: "\""))
    }

    /// Closes the object and gives its bytes to `body`.
    consuming func finish<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        byte(UInt8(ascii: "}"))
        return body(UnsafeBufferPointer(start: storage, count: count))
    }

    /// Room for `more` bytes past `count`.
    @inline(__always)
    private mutating func reserve(_ more: Int) {
        guard count + more > capacity else { return }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: max(capacity * 2, count + more))
        grown.update(from: storage, count: count)
        storage.deallocate()
        storage = grown
        capacity = max(capacity * 2, count + more)
    }

    @inline(__always)
    private mutating func byte(_ value: UInt8) {
        reserve(1)
        storage[count] = value
        count += 1
    }

    private mutating func bytes(_ source: UnsafeBufferPointer<UInt8>) {
        guard let base = source.baseAddress, !source.isEmpty else { return }
        reserve(source.count)
        (storage + count).update(from: base, count: source.count)
        count += source.count
    }

    private mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes($0) }
    }

    /// A key: the names are this file's own literals, which need no escapes.
    private mutating func key(_ name: StaticString) {
        reserve(name.utf8CodeUnitCount + 4)
        if !first {
            storage[count] = UInt8(ascii: ",")
            count += 1
        }
        first = false
        storage[count] = UInt8(ascii: "\"")
        count += 1
        name.withUTF8Buffer { name in
            (storage + count).update(from: name.baseAddress!, count: name.count)
            count += name.count
        }
        storage[count] = UInt8(ascii: "\"")
        storage[count + 1] = UInt8(ascii: ":")
        count += 2
    }

    /// An integer in decimal.
    private mutating func number(_ value: Int) {
        if value < 0 {
            byte(UInt8(ascii: "-"))
            // The magnitude of Int.min does not fit an Int: its digits come from the UInt.
            unsignedNumber(value.magnitude)
        } else {
            unsignedNumber(UInt(value))
        }
    }

    private mutating func unsignedNumber(_ value: UInt) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        reserve(digits)
        var remaining = value
        for position in stride(from: count + digits - 1, through: count, by: -1) {
            storage[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        count += digits
    }

    /// A non-negative number in decimal, zero-padded to `width` digits.
    private mutating func digits(_ value: Int, width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = max(0, value)
        while divisor > 0 {
            byte(UInt8(ascii: "0") + UInt8((rest / divisor) % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    /// A JSON string. Bytes of multi-byte UTF-8 sequences pass through: the value is valid UTF-8,
    /// and only quotes, backslashes and control characters need escapes.
    private mutating func string(_ value: String) {
        byte(UInt8(ascii: "\""))
        // Most values need no escape: copied whole.
        var value = value
        value.withUTF8 { utf8 in
            if !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                bytes(utf8)
                return
            }
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case UInt8(ascii: "\n"): raw("\\n")
                case UInt8(ascii: "\r"): raw("\\r")
                case UInt8(ascii: "\t"): raw("\\t")
                case 0..<0x20:
                    let hex: StaticString = "0123456789abcdef"
                    raw("\\u00")
                    hex.withUTF8Buffer { hex in
                        self.byte(hex[Int(byte >> 4)])
                        self.byte(hex[Int(byte & 0x0F)])
                    }
                default:
                    self.byte(byte)
                }
            }
        }
        byte(UInt8(ascii: "\""))
    }
}
