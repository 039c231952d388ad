import Foundation
import Testing

/// `rampart proxy` on SIGTERM: it drains, then exits, whatever its peers keep open.
@Suite("proxy shutdown")
struct ProxyShutdownTests {
    @Test("SIGTERM closes connections a peer keeps idle after the drain period, and the proxy exits")
    func drainsThenExits() async throws {
        let ca = try CAProcess(label: "proxy-drain")
        let proxy = try await offPool {
            try ServiceProcess(
                Paths.rampart,
                [
                    "proxy", "--workload", "w", "--namespace", "demo", "--app", "127.0.0.1:1", "--inbound", "127.0.0.1:0",
                    "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--control-plane", "127.0.0.1:1", "--ca-root", ca.rootPath,
                    "--identity-dir", "\(ca.directory)/no-identity-yet", "--access-log", "off",
                ],
                logFile: "\(ca.directory)/proxy.log", marker: "rampart proxy ready")
        }
        defer { proxy.stop() }
        let outbound = try #require(proxy.port(after: "outbound="))
        // A keep-alive connection left idle after one exchange, as a peer's connection pool leaves it.
        let socket = try IdleConnection(port: outbound)
        defer { socket.close() }
        let answer = try socket.exchange("GET / HTTP/1.1\r\nHost: nosuch\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 "), "\(answer)")

        let started = Date()
        kill(proxy.process.processIdentifier, SIGTERM)
        while proxy.process.isRunning && Date().timeIntervalSince(started) < 30 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!proxy.process.isRunning, "the proxy was still running 30 s after SIGTERM:\n\(proxy.log)")
        // The drain period is Istio's default, 5 s: not cut short, and not much longer.
        let took = Date().timeIntervalSince(started)
        #expect(took >= 4.5 && took < 20, "exit took \(took) s")
        #expect(socket.isClosedByPeer(), "the idle connection was not closed")
        // It was the drain that closed it: the connection was still open when the period ended.
        #expect(proxy.log.contains("closing connections left after draining"), "\(proxy.log)")
    }
}

/// A plain TCP connection to a loopback port.
final class IdleConnection: @unchecked Sendable {
    private let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("cannot connect to 127.0.0.1:\(port)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends `request` and returns the first bytes of the answer.
    func exchange(_ request: String) throws -> String {
        _ = request.withCString { send(descriptor, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
    }

    /// Whether the peer has closed the connection (a read returns end of file or a reset).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, 0) <= 0
    }

    func close() { _ = Glibc.close(descriptor) }
}
