import Foundation
import NIOCore
import NIOHTTP1
import RampartPolicy
import Synchronization

/// The headers Envoy's connection manager and router put on every response of an Istio sidecar:
/// `date`, `server` (`istio-envoy` on the inbound side, `envoy` on the outbound side, replacing
/// the application's), and, on a response that came from upstream, `x-envoy-upstream-service-time`.
enum ResponseStamp {
    /// The `server` value of the inbound side, as Istio names its sidecars' inbound listeners.
    static let inboundServer = "istio-envoy"
    /// The `server` value of the outbound side, Envoy's default.
    static let outboundServer = "envoy"

    /// Stamps `response` with the date, `server`, and the upstream's service time when it came
    /// from upstream.
    ///
    /// One pass over the headers finds which of the three the response already has (an
    /// application's `server`, or all three on an answer another sidecar stamped); the headers are
    /// then rebuilt once without them, rather than searched again for each removal.
    static func apply(_ response: inout BufferedResponse, server: String, serviceTime: Int?) {
        let time = response.isLocal ? nil : serviceTime.map { String($0) }
        var stamped = false
        for (name, _) in response.head.headers where isStamp(name, replacingTime: time != nil) {
            stamped = true
            break
        }
        if stamped {
            var kept: [(String, String)] = []
            kept.reserveCapacity(response.head.headers.count + 3)
            for (name, value) in response.head.headers where !isStamp(name, replacingTime: time != nil) { kept.append((name, value)) }
            response.head.headers = HTTPHeaders(kept)
        }
        response.head.headers.add(name: "date", value: HTTPDate.now())
        response.head.headers.add(name: "server", value: server)
        if let time { response.head.headers.add(name: "x-envoy-upstream-service-time", value: time) }
    }

    /// Whether a header is one the stamps replace: `date`, `server`, and the service time when a
    /// new one is set.
    private static func isStamp(_ name: String, replacingTime: Bool) -> Bool {
        switch name.utf8.count {
        case 4: HeaderTokens.equalsIgnoringCase(name[...], "date")
        case 6: HeaderTokens.equalsIgnoringCase(name[...], "server")
        case 29: replacingTime && HeaderTokens.equalsIgnoringCase(name[...], "x-envoy-upstream-service-time")
        default: false
        }
    }

    /// Whole milliseconds since `start`.
    static func milliseconds(since start: NIODeadline) -> Int {
        Int((NIODeadline.now() - start).nanoseconds / 1_000_000)
    }
}

/// The current time as an HTTP date (RFC 9110's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`),
/// formatted once per second.
enum HTTPDate {
    private static let cached = Mutex<(second: Int, text: String)>((-1, ""))
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The current second's date.
    static func now() -> String {
        var seconds = time(nil)
        if let text = cached.withLock({ $0.second == seconds ? $0.text : nil }) { return text }
        let text = format(seconds: &seconds)
        cached.withLock { $0 = (seconds, text) }
        return text
    }

    /// `seconds` since 1970 as an HTTP date.
    static func format(seconds: inout time_t) -> String {
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
