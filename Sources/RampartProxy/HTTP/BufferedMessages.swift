import Foundation
import NIOCore
import NIOHTTP1
import RampartPolicy

/// An HTTP request as the proxy passes it on: held whole, or (past what the proxy holds) its head
/// and the start of its body, the rest to follow (`upload`).
public struct BufferedRequest: Sendable {
    /// The request line and headers.
    public var head: HTTPRequestHead
    /// The body.
    public var body: ByteBuffer
    /// Trailers, if the client sent any (gRPC over HTTP/2 may).
    public var trailers: HTTPHeaders?
    /// Set by the server connection it arrived on: what stops the work done for it when its
    /// client goes away before the answer.
    public var cancellation: RequestCancellation?
    /// Whether the request was handed on at its head, its body to follow as it arrives (a gRPC
    /// call over HTTP/2, see `StreamRelay`); `body` then holds what came with the head.
    public var isStreamed = false
    /// For a streamed request: whether its end came with its head, in `body` and `trailers`, so
    /// nothing of it follows.
    public var streamEnded = false
    /// When its head arrived, set by the server connection that assembled it: the access log's
    /// `start_time`, from which its `duration` counts, as Envoy counts both from the request's
    /// first bytes (so a request's duration includes the reading of its body).
    public var arrived: Date?
    /// For a request whose body had not ended when it was handed on: the rest of the body, passed
    /// on as the client sends it (see `StreamedUpload`); `body` holds what came before, and
    /// `trailers` is nil (they come with the rest).
    var upload: StreamedUpload?

    /// Creates a request.
    public init(head: HTTPRequestHead, body: ByteBuffer = ByteBuffer(), trailers: HTTPHeaders? = nil) {
        self.head = head
        self.body = body
        self.trailers = trailers
    }

    /// Whether the request arrived over HTTP/2.
    public var isHTTP2: Bool { head.version.major == 2 }

    /// Whether the request is gRPC (see `GRPCFraming.isGRPC(contentType:)`).
    public var isGRPC: Bool { GRPCFraming.isGRPC(contentType: head.headers.first(name: "content-type")) }

    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`, as access logs spell it.
    public var protocolName: String {
        switch (head.version.major, head.version.minor) {
        case (2, _): return "HTTP/2"
        case (1, 0): return "HTTP/1.0"
        default: return "HTTP/1.1"
        }
    }
}

/// An HTTP response held whole.
public struct BufferedResponse: Sendable {
    /// The status line and headers.
    public var head: HTTPResponseHead
    /// The body.
    public var body: ByteBuffer
    /// Trailers (gRPC's `grpc-status` travels here).
    public var trailers: HTTPHeaders?
    /// Whether the proxy made the response itself (a denial, a 502…) rather than relaying one.
    public var isLocal = false
    /// For a `101 Switching Protocols`: the upstream connection, now a byte stream, that the
    /// client's connection is joined to once the 101 is written (see `HTTPUpgrade`).
    public var upgraded: UpgradedConnection?
    /// For a request passed on as it arrives: the exchange, still to run, that relays the call to
    /// its upstream and the upstream's answer back (see `StreamRelay`).
    var relay: StreamRelay?
    /// Whether the body follows the head as the upstream sends it: the response gets no length of
    /// the proxy's making.
    var isStreamed = false
    /// For a relayed response: the body bytes relayed to the client, which `body` does not hold.
    var relayedBytes: Int?
    /// For an upstream's response whose body had not all come with its head: the rest, passed on
    /// as it arrives (see `StreamedBody`); `body` holds what came with the head.
    var streamed: StreamedBody?
    /// For a gRPC-Web call whose response body follows its head: how the rest of the body is
    /// rewritten for the client (see `GRPCWeb`).
    var webEncoder: GRPCWeb.ResponseEncoder?
    /// The client went away before the exchange could answer it (see `abandoned`).
    var clientGone = false
    /// For a local reply: the gRPC status a gRPC call gets, when it is not the one its HTTP status
    /// maps to (a timeout is `DEADLINE_EXCEEDED`, not the `UNAVAILABLE` of 504).
    var grpcStatus: Int?

    /// Creates a response.
    public init(head: HTTPResponseHead, body: ByteBuffer = ByteBuffer(), trailers: HTTPHeaders? = nil) {
        self.head = head
        self.body = body
        self.trailers = trailers
    }

    /// What a request its client abandoned before its end gets: nothing is sent, and the request
    /// is recorded as Envoy records a downstream that disconnected (see `ProxyContext.finish`).
    static var abandoned: BufferedResponse {
        var response = BufferedResponse(head: HTTPResponseHead(version: .http1_1, status: .ok))
        response.isLocal = true
        response.clientGone = true
        return response
    }

    /// A short plain-text response the proxy makes itself (403, 502 …).
    public static func local(_ status: HTTPResponseStatus, _ text: String, version: HTTPVersion = .http1_1) -> BufferedResponse {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(text.utf8.count))
        var response = BufferedResponse(head: HTTPResponseHead(version: version, status: status, headers: headers), body: ByteBuffer(string: text))
        response.isLocal = true
        return response
    }
}

/// How gRPC calls get their answers over HTTP/2, as Envoy gives them.
enum GRPCFraming {
    /// The trailers that end a gRPC response.
    static let trailerNames = ["grpc-status", "grpc-message", "grpc-status-details-bin"]

    /// A `grpc-timeout` header's duration, as gRPC's HTTP/2 protocol spells it: one to eight
    /// digits and a unit (`H`, `M`, `S`, `m`, `u` or `n`). Anything else is no timeout, as Envoy
    /// ignores a header it cannot read.
    static func timeout(_ value: String?) -> TimeAmount? {
        guard let value, value.utf8.count >= 2, value.utf8.count <= 9, let unit = value.utf8.last else { return nil }
        let digits = value.utf8.dropLast()
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let amount = Int64(String(decoding: digits, as: UTF8.self))
        else { return nil }
        let nanosecondsPerUnit: Int64
        switch unit {
        case UInt8(ascii: "H"): nanosecondsPerUnit = 3_600_000_000_000
        case UInt8(ascii: "M"): nanosecondsPerUnit = 60_000_000_000
        case UInt8(ascii: "S"): nanosecondsPerUnit = 1_000_000_000
        case UInt8(ascii: "m"): nanosecondsPerUnit = 1_000_000
        case UInt8(ascii: "u"): nanosecondsPerUnit = 1_000
        case UInt8(ascii: "n"): nanosecondsPerUnit = 1
        default: return nil
        }
        // Eight digits of hours go past what a deadline can hold: such a call has no timeout of
        // its own that the proxy could reach (a year or more).
        let (nanoseconds, overflow) = amount.multipliedReportingOverflow(by: nanosecondsPerUnit)
        guard !overflow, nanoseconds <= longestTimeout.nanoseconds else { return longestTimeout }
        return .nanoseconds(nanoseconds)
    }

    /// The longest call timeout the proxy keeps: about a year.
    static let longestTimeout: TimeAmount = .hours(24 * 366)

    /// The timeout of an exchange: a gRPC call's own `grpc-timeout`, capped by the proxy's
    /// `--upstream-timeout` when that is set, as Istio's routes let Envoy honour the header
    /// (`grpc_timeout_header_max` is the route's timeout, none by default); a zero or unreadable
    /// header, or a request that is not gRPC, gets the proxy's timeout (zero: none).
    static func exchangeTimeout(_ head: HTTPRequestHead, proxy: TimeAmount) -> TimeAmount {
        guard let header = head.headers.first(name: "grpc-timeout"), isGRPC(contentType: head.headers.first(name: "content-type")),
            let call = timeout(header), call > .zero
        else { return proxy }
        return proxy > .zero ? min(call, proxy) : call
    }

    /// Whether a content type is gRPC's as Envoy reads it: `application/grpc`, alone or followed by
    /// `+` (`application/grpc+proto`) or `;` (parameters). gRPC-Web (`application/grpc-web…`) is not.
    static func isGRPC(contentType: String?) -> Bool {
        guard let contentType else { return false }
        // Compared byte by byte, case-insensitively, without making a lower-case copy.
        var bytes = contentType.utf8.makeIterator()
        for expected in "application/grpc".utf8 {
            guard let byte = bytes.next(), (byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) == expected else { return false }
        }
        let next = bytes.next()
        return next == nil || next == UInt8(ascii: "+") || next == UInt8(ascii: ";")
    }

    /// A gRPC reply the proxy makes itself, as HTTP/1.1 carries it: its status in the head (as
    /// Envoy ends such a reply with its headers), and no body.
    static func overHTTP1(_ reply: BufferedResponse) -> BufferedResponse {
        var reply = reply
        for (name, value) in reply.trailers ?? [:] { reply.head.headers.add(name: name, value: value) }
        reply.trailers = nil
        return reply
    }

    /// A gRPC response sent "trailers-only" (its status in its only HEADERS frame, as servers answer
    /// errors) keeps its status as trailers, which is where the HTTP/1 view of a stream carries
    /// it: `GRPCTrailersOnly` sends head and trailers as one HEADERS frame again. The length the
    /// HTTP/1 view gave the message-less response goes: a gRPC response's length is its DATA frames'.
    static func keepingStatus(_ response: inout BufferedResponse) {
        guard response.trailers == nil, response.body.readableBytes == 0, response.head.headers.contains(name: "grpc-status")
        else { return }
        response.head.headers.remove(name: "content-length")
        var trailers = HTTPHeaders()
        for name in trailerNames {
            for value in response.head.headers[name] { trailers.add(name: name, value: value) }
            response.head.headers.remove(name: name)
        }
        response.trailers = trailers
    }

    /// A reply the proxy makes itself to a gRPC call: HTTP 200 with the status mapped as Envoy maps
    /// it (403 → PERMISSION_DENIED, 401 → UNAUTHENTICATED…), or the reply's own `grpcStatus`, and
    /// the text as `grpc-message`.
    static func localReply(_ response: BufferedResponse) -> BufferedResponse {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/grpc")
        for (name, value) in response.head.headers where !["content-type", "content-length"].contains(name.lowercased()) {
            headers.add(name: name, value: value)
        }
        var trailers = HTTPHeaders()
        trailers.add(name: "grpc-status", value: String(localStatus(response)))
        let text = String(buffer: response.body).trimmingCharacters(in: .whitespacesAndNewlines)
        if !text.isEmpty { trailers.add(name: "grpc-message", value: percentEncoded(text)) }
        var reply = BufferedResponse(head: HTTPResponseHead(version: response.head.version, status: .ok, headers: headers), trailers: trailers)
        reply.isLocal = true
        return reply
    }

    /// The gRPC status a local reply gives a gRPC call (and its metrics): its own, or its HTTP
    /// status's.
    static func localStatus(_ response: BufferedResponse) -> Int {
        response.grpcStatus ?? status(for: response.head.status.code)
    }

    /// The gRPC status for an HTTP status (gRPC's HTTP-to-gRPC mapping, as Envoy applies it).
    static func status(for code: UInt) -> Int {
        switch code {
        case 400: return 13  // INTERNAL
        case 401: return 16  // UNAUTHENTICATED
        case 403: return 7  // PERMISSION_DENIED
        case 404: return 12  // UNIMPLEMENTED
        case 429, 502, 503, 504: return 14  // UNAVAILABLE
        default: return 2  // UNKNOWN
        }
    }

    /// `grpc-message`'s encoding: bytes outside printable ASCII, and `%`, percent-encoded.
    static func percentEncoded(_ text: String) -> String { percentEncoded(Array(text.utf8)) }

    /// The same for bytes that need not be UTF-8 (a gRPC-Web reply's body, see `GRPCWeb`).
    static func percentEncoded(_ bytes: [UInt8]) -> String {
        var out = ""
        for byte in bytes {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

/// Header rules for forwarding.
public enum HopByHop {
    /// Headers that describe one connection and are never forwarded (RFC 9110 §7.6.1), lowercase.
    public static let names: [String] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate",
    ]

    /// The same names as bytes, for a case-insensitive comparison without allocating.
    private static let nameBytes: [[UInt8]] = names.map { Array($0.utf8) }

    /// Removes hop-by-hop headers, including any the `connection` header lists. `te: trailers`
    /// is kept: gRPC requires it, and HTTP/2 allows exactly that value.
    ///
    /// This runs on every request and response in each direction, so it reads the headers once,
    /// compares names as bytes, and removes only what it found.
    public static func strip(_ headers: inout HTTPHeaders) {
        var found: [String] = []
        var listed: [String] = []
        var keepsTrailers = false
        for (name, value) in headers {
            guard let known = hopByHopName(name) else { continue }
            if !found.contains(known) { found.append(known) }
            switch known {
            case "connection":
                // `close` names no header and `keep-alive` is a hop-by-hop name already: the
                // usual values list nothing more to remove, and are read without allocating.
                if connectionValue(value) != nil { continue }
                for option in lowercasedTokens(value) where !listed.contains(option) {
                    listed.append(option)
                }
            case "te":
                keepsTrailers = keepsTrailers || lowercasedTokens(value).contains { $0 == "trailers" || $0.hasPrefix("trailers;") }
            default:
                break
            }
        }
        guard !found.isEmpty else { return }
        for name in found { headers.remove(name: name) }
        for name in listed where !found.contains(name) && !isProxyOwned(name) { headers.remove(name: name) }
        if keepsTrailers { headers.add(name: "te", value: "trailers") }
    }

    /// Headers a client cannot have removed by naming them in `Connection`: the request's `Host`,
    /// and those the proxy itself sets and the application relies on (the forwarding headers, the
    /// request ID the access log records, Envoy's own), as Envoy removes only its fixed hop-by-hop
    /// set. Listing `x-forwarded-client-cert` there would otherwise drop the peer's identity.
    static func isProxyOwned(_ lowercased: String) -> Bool {
        ["host", "content-length", "x-forwarded-client-cert", "x-forwarded-proto", "x-forwarded-for", "x-request-id"]
            .contains(lowercased) || lowercased.hasPrefix("x-envoy-")
    }

    /// Whether a message with these headers lets its connection stay open after it: HTTP/1.1 and
    /// later unless a `connection` header says `close`, HTTP/1.0 only when one says `keep-alive`.
    ///
    /// This is `HTTPRequestHead.isKeepAlive`'s answer, read without NIO's canonical header form,
    /// which it rebuilds (splitting every value) for headers changed since they were parsed, as
    /// a request the proxy forwards always is.
    static func isKeepAlive(_ headers: HTTPHeaders, version: HTTPVersion) -> Bool {
        let options = connectionOptions(headers)
        if options.close { return false }
        return version.major > 1 || (version.major == 1 && version.minor >= 1) || options.keepAlive
    }

    /// Whether a `connection` header of these says `close`.
    static func asksToClose(_ headers: HTTPHeaders) -> Bool {
        connectionOptions(headers).close
    }

    /// Whether the `connection` headers list `close` and `keep-alive`, found in one pass over the
    /// headers without NIO's canonical form.
    private static func connectionOptions(_ headers: HTTPHeaders) -> (close: Bool, keepAlive: Bool) {
        var options = (close: false, keepAlive: false)
        for (name, value) in headers where name.utf8.count == 10 && hopByHopName(name) == "connection" {
            switch connectionValue(value) {
            case .close?: options.close = true
            case .keepAlive?: options.keepAlive = true
            case nil:
                for token in lowercasedTokens(value) {
                    if token == "close" { options.close = true } else if token == "keep-alive" { options.keepAlive = true }
                }
            }
        }
        return options
    }

    /// The two usual `connection` values.
    enum ConnectionValue { case close, keepAlive }

    /// Which of the two usual values `value` is, alone and in any case, with spaces or tabs
    /// around it; nil for anything else (a list, other options), which ``lowercasedTokens(_:)``
    /// then reads.
    static func connectionValue(_ value: String) -> ConnectionValue? {
        var value = value
        return value.withUTF8 { bytes -> ConnectionValue? in
            var start = 0
            var end = bytes.count
            while start < end && (bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t")) { start += 1 }
            while end > start && (bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t")) { end -= 1 }
            func spells(_ word: StaticString) -> Bool {
                guard end - start == word.utf8CodeUnitCount else { return false }
                let letters = word.utf8Start
                for offset in 0..<(end - start) where asciiLowercase(bytes[start + offset]) != letters[offset] { return false }
                return true
            }
            if spells("keep-alive") { return .keepAlive }
            if spells("close") { return .close }
            return nil
        }
    }

    /// Whether `name` is one of ``names``, compared as ASCII without regard to case.
    static func isHopByHop(_ name: String) -> Bool {
        hopByHopName(name) != nil
    }

    /// The lowercase entry of ``names`` that `name` spells in any case, or nil.
    static func hopByHopName(_ name: String) -> String? {
        var name = name
        return name.withUTF8 { bytes -> String? in
            // Every name is 2, 7, 10 or 16 to 19 bytes long: most headers are ruled out here.
            switch bytes.count {
            case 2, 7, 10, 16...19: break
            default: return nil
            }
            for (index, candidate) in nameBytes.enumerated() where candidate.count == bytes.count {
                var same = true
                for offset in 0..<bytes.count where candidate[offset] != asciiLowercase(bytes[offset]) {
                    same = false
                    break
                }
                if same { return names[index] }
            }
            return nil
        }
    }

    /// A comma-separated header value's elements, without surrounding spaces or tabs, in ASCII
    /// lowercase; empty elements are left out.
    static func lowercasedTokens(_ value: String) -> [String] {
        var tokens: [String] = []
        var current: [UInt8] = []
        func finish() {
            while let last = current.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { current.removeLast() }
            if !current.isEmpty { tokens.append(String(decoding: current, as: UTF8.self)) }
            current.removeAll(keepingCapacity: true)
        }
        for byte in value.utf8 {
            if byte == UInt8(ascii: ",") {
                finish()
            } else if current.isEmpty && (byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")) {
                continue
            } else {
                current.append(asciiLowercase(byte))
            }
        }
        finish()
        return tokens
    }

    private static func asciiLowercase(_ byte: UInt8) -> UInt8 {
        0x41...0x5A ~= byte ? byte | 0x20 : byte
    }
}

extension HTTPHeaders {
    /// Sets the header `name` (in any case) to `value`, as `replaceOrAdd` does, but
    /// leaves headers that already hold just that value as they are, and adds without a removal
    /// when there is none. `replaceOrAdd` removes first, which rebuilds the header list (copying
    /// it when it is shared, as a forwarded message's is); the proxy sets `host`,
    /// `content-length` and the like on every message, and they usually say so already.
    mutating func set(name: String, value: String) {
        var found = 0
        var same = false
        let length = name.utf8.count
        for (existing, current) in self where existing.utf8.count == length && HeaderTokens.equalsIgnoringCase(existing, name) {
            found += 1
            same = current == value
        }
        switch found {
        case 0: add(name: name, value: value)
        case 1 where same: return
        default: replaceOrAdd(name: name, value: value)
        }
    }
}
