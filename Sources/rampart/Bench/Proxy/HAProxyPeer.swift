import Foundation

/// The peer of `rampart bench proxy`: two HAProxy processes configured for the same two-hop path.
///
/// `H_A` listens in plain HTTP, as proxy A's outbound listener does, and forwards over TLS
/// presenting A's certificate; `H_B` terminates that TLS, requires a client certificate from the
/// mesh's root, and forwards to the application. HAProxy keeps its defaults otherwise (one thread
/// per CPU, keep-alive to servers with connection reuse).
struct HAProxyPeer {
    /// Listen ports: H_A's plain HTTP frontend and H_B's TLS frontend.
    let outboundPort: Int
    let inboundPort: Int
    let outboundConfig: String
    let inboundConfig: String

    /// Shared settings: HTTP mode, keep-alive, the same timeouts on both processes.
    static let defaults = """
        global
            maxconn 4096
        defaults
            mode http
            option http-keep-alive
            timeout connect 5s
            timeout client 30s
            timeout server 30s
            timeout http-keep-alive 30s
        """

    /// Writes both configuration files into `directory`. With `http2`, every hop speaks HTTP/2,
    /// as for gRPC: cleartext with prior knowledge in and to the application, ALPN `h2` between.
    static func write(directory: String, appPort: Int, rootCert: String, clientPEM: String, serverPEM: String, http2: Bool = false) throws -> HAProxyPeer {
        let outboundPort = try HTTPProbe.freePort()
        var inboundPort = try HTTPProbe.freePort()
        while inboundPort == outboundPort { inboundPort = try HTTPProbe.freePort() }
        let outbound = """
            \(defaults)
            frontend outbound
                bind 127.0.0.1:\(outboundPort)\(http2 ? " proto h2" : "")
                default_backend mesh
            backend mesh
                server b 127.0.0.1:\(inboundPort) ssl crt \(clientPEM) ca-file \(rootCert) verify required\(http2 ? " alpn h2" : "")

            """
        let inbound = """
            \(defaults)
            frontend inbound
                bind 127.0.0.1:\(inboundPort) ssl crt \(serverPEM) ca-file \(rootCert) verify required\(http2 ? " alpn h2" : "")
                default_backend app
            backend app
                server app 127.0.0.1:\(appPort)\(http2 ? " proto h2" : "")

            """
        let peer = HAProxyPeer(
            outboundPort: outboundPort, inboundPort: inboundPort,
            outboundConfig: "\(directory)/haproxy-a.cfg", inboundConfig: "\(directory)/haproxy-b.cfg"
        )
        try outbound.write(toFile: peer.outboundConfig, atomically: true, encoding: .utf8)
        try inbound.write(toFile: peer.inboundConfig, atomically: true, encoding: .utf8)
        return peer
    }

    /// Checks both files with `haproxy -c`, then starts H_B and H_A in the foreground (`-db`).
    func start(logDirectory: String) async throws -> (outbound: BenchChild, inbound: BenchChild) {
        for (config, file) in [(inboundConfig, "haproxy-b-check"), (outboundConfig, "haproxy-a-check")] {
            let check = try BenchChild.spawn(name: "haproxy -c \(config)", file: file, arguments: ["haproxy", "-c", "-f", config], logDirectory: logDirectory)
            defer { check.stop() }
            guard let status = await check.waitForExit(timeout: .seconds(20)), status == 0 else {
                throw BenchError("HAProxy refused its generated configuration \(config):\n\(check.logTail())")
            }
        }
        let inbound = try BenchChild.spawn(name: "HAProxy B", file: "haproxy-b", arguments: ["haproxy", "-db", "-f", inboundConfig], logDirectory: logDirectory)
        let outbound: BenchChild
        do {
            outbound = try BenchChild.spawn(name: "HAProxy A", file: "haproxy-a", arguments: ["haproxy", "-db", "-f", outboundConfig], logDirectory: logDirectory)
        } catch {
            inbound.stop()
            throw error
        }
        return (outbound, inbound)
    }
}
