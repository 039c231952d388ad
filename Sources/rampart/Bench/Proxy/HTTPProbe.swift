import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP GET on loopback with curl, for readiness checks and the probe before each load run.
enum HTTPProbe {
    /// A status (0 when no response came) and the body.
    struct Response: Sendable {
        var status: Int
        var body: String
    }

    /// `curl -sS --max-time 3 -H 'Host: host' url`. With `grpcMessage`, a unary gRPC call instead:
    /// the message POSTed over HTTP/2 with prior knowledge and gRPC's headers.
    static func get(_ url: String, host: String? = nil, grpcMessage: [UInt8]? = nil, logDirectory: String) async -> Response {
        let name = "\(logDirectory)/probe-\(UUID().uuidString.prefix(8))"
        let bodyPath = "\(name).body"
        let messagePath = "\(name).request"
        defer {
            try? FileManager.default.removeItem(atPath: bodyPath)
            try? FileManager.default.removeItem(atPath: messagePath)
        }
        var arguments = ["curl", "-sS", "--max-time", "3", "-o", bodyPath, "-w", "%{http_code}"]
        if let host { arguments += ["-H", "Host: \(host)"] }
        if let grpcMessage {
            guard (try? Data(grpcMessage).write(to: URL(fileURLWithPath: messagePath))) != nil else {
                return Response(status: 0, body: "cannot write \(messagePath)")
            }
            arguments += [
                "--http2-prior-knowledge", "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@\(messagePath)",
            ]
        }
        arguments.append(url)
        guard let curl = try? BenchChild.spawn(name: "curl", file: "probe", arguments: arguments, logDirectory: logDirectory) else {
            return Response(status: 0, body: "curl could not be started; run ./scripts/install-deps.sh")
        }
        defer { curl.stop() }
        _ = await curl.waitForExit(timeout: .seconds(5))
        let body = (try? String(contentsOfFile: bodyPath, encoding: .utf8)) ?? curl.standardError
        return Response(status: Int(curl.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, body: body)
    }

    /// Probes until `accept` holds for the response or `timeout` passes; returns the last response.
    static func poll(
        _ url: String, host: String? = nil, grpcMessage: [UInt8]? = nil, logDirectory: String, timeout: Duration, until accept: (Response) -> Bool
    ) async -> (accepted: Bool, last: Response) {
        let deadline = ContinuousClock.now + timeout
        var last = Response(status: 0, body: "")
        while ContinuousClock.now < deadline {
            last = await get(url, host: host, grpcMessage: grpcMessage, logDirectory: logDirectory)
            if accept(last) { return (true, last) }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return (false, last)
    }

    /// A free TCP port on 127.0.0.1 (bound, read and released: for peers that cannot report the
    /// port the OS gave them).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("cannot open a socket to find a free port: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw BenchError("cannot bind 127.0.0.1:0 to find a free port: \(String(cString: strerror(errno)))") }
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard named == 0 else { throw BenchError("cannot read the free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
