import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension AccessLog {
    /// How lines are written: Istio's `accessLogEncoding`.
    public enum Encoding: String, Sendable, CaseIterable {
        /// One JSON object per line, with Istio's default JSON fields and Rampart's own.
        case json = "JSON"
        /// Istio's default text format (`EnvoyTextLogFormat`), field for field.
        case text = "TEXT"

        /// Reads `JSON` or `TEXT`, in any case, as Istio's mesh config spells them.
        public init?(option: String) {
            self.init(rawValue: option.uppercased())
        }
    }

    /// The text line for a record, as Istio's default text format writes it:
    ///
    ///     [START_TIME] "METHOD PATH PROTOCOL" RESPONSE_CODE RESPONSE_FLAGS RESPONSE_CODE_DETAILS
    ///     CONNECTION_TERMINATION_DETAILS "UPSTREAM_TRANSPORT_FAILURE_REASON" BYTES_RECEIVED BYTES_SENT
    ///     DURATION UPSTREAM_SERVICE_TIME "X_FORWARDED_FOR" "USER_AGENT" "REQUEST_ID" "AUTHORITY"
    ///     "UPSTREAM_HOST" UPSTREAM_CLUSTER UPSTREAM_LOCAL_ADDRESS DOWNSTREAM_LOCAL_ADDRESS
    ///     DOWNSTREAM_REMOTE_ADDRESS REQUESTED_SERVER_NAME ROUTE_NAME
    ///
    /// on one line, each absent value written `-`, as Envoy writes it; a TCP connection has `-`
    /// for its method, path and protocol and 0 for its response code.
    public static func textLine(_ record: RequestRecord) -> String {
        let tcp = record.protocolName == "TCP"
        var fields: [String] = []
        fields.reserveCapacity(24)
        fields.append("[\(timestamp(record.startTime))]")
        fields.append("\"\(value(record.method)) \(value(record.path)) \(tcp ? "-" : record.protocolName)\"")
        fields.append(String(record.responseCode))
        fields.append(value(record.responseFlags))
        fields.append(value(record.responseDetails))
        fields.append("-")  // connection termination details: not tracked
        fields.append("\"-\"")  // upstream transport failure reason: not tracked
        fields.append(String(record.bytesReceived))
        fields.append(String(record.bytesSent))
        fields.append(String(Int((record.duration * 1000).rounded())))
        fields.append(record.upstreamServiceTime.map { String($0) } ?? "-")
        fields.append("\"\(value(record.forwardedFor))\"")
        fields.append("\"\(value(record.userAgent))\"")
        fields.append("\"\(value(record.requestID))\"")
        fields.append("\"\(value(record.authority))\"")
        fields.append("\"\(value(record.upstreamHost))\"")
        fields.append(value(record.upstreamCluster))
        fields.append("-")  // upstream local address: not tracked
        fields.append(value(record.downstreamLocalAddress))
        fields.append(value(record.sourceAddress))
        fields.append(value(record.requestedServerName))
        // Every HTTP route is Istio's `default`: there are no VirtualServices; TCP has none.
        fields.append(tcp ? "-" : "default")
        return fields.joined(separator: " ")
    }

    /// A value as Envoy's text formatter writes it: `-` when absent or empty, and with control
    /// characters replaced, so that one record stays one line.
    private static func value(_ text: String?) -> String {
        guard let text, !text.isEmpty else { return "-" }
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        return String(decoding: text.utf8.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }

    /// A start time's calendar fields in UTC and its milliseconds, truncated.
    ///
    /// Whole microseconds first, so that a binary fraction just below a millisecond boundary
    /// (.001 stored as .000999…) keeps that millisecond; then milliseconds, truncated. Every
    /// value here is a whole number a Double holds exactly.
    static func utc(_ date: Date) -> (parts: tm, millis: Int) {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        let totalMillis = (micros / 1000).rounded(.down)
        let seconds = (totalMillis / 1000).rounded(.down)
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return (parts, Int(totalMillis - seconds * 1000))
    }

    /// `2026-12-02T16:28:18.409Z`: UTC, milliseconds truncated, as Envoy's `%START_TIME%`.
    static func timestamp(_ date: Date) -> String {
        let (parts, millis) = utc(date)
        func pad(_ number: Int, _ width: Int) -> String {
            let digits = String(number)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(millis, 3))Z"
    }
}
