import Foundation
import NIOCore
@testable import RampartProxy
import Testing

@Suite("Istio's default retries on the outbound side")
struct RetryTests {
    /// A loopback port nothing listens on.
    static func closedPort() async throws -> Int {
        let closed = try await EchoApp()
        let port = closed.port
        try await closed.serverChannel.close()
        return port
    }

    @Test("a request whose connection cannot be made goes to another endpoint, counting its attempts; with none left it gets 503 UF,URX")
    func connectFailureRetried() async throws {
        try await DataPathTests().withServer { mesh, serverProxy, server in
            try serverProxy.install(SnapshotBuilder.snapshot())
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let clientLog = "\(mesh.directory)/retry-client-access.log"
            let clientProxy = try await TestProxy(
                workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1,
                logFile: clientLog)
            let dead = try await Self.closedPort()
            try clientProxy.install(SnapshotBuilder.snapshot(services: [
                ("server", "default", 8080, [("127.0.0.1:\(dead)", server.spiffeID, "server-v0"), ("127.0.0.1:\(serverProxy.inboundPort)", server.spiffeID, "server-v1")]),
                ("gone", "default", 8080, [("127.0.0.1:\(dead)", server.spiffeID, "server-v0")]),
            ]))

            // Round robin starts at either endpoint: every request is answered, some on the second attempt.
            var counts: [String] = []
            for index in 0..<4 {
                let received = try await RawClient.untilClosed(
                    port: clientProxy.outboundPort, sending: "POST /r\(index) HTTP/1.1\r\nHost: server\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody")
                #expect(received.hasPrefix("HTTP/1.1 200 "), "\(received.prefix(300))")
                let echo = received.range(of: "\r\n\r\n").map { String(received[$0.upperBound...]) } ?? ""
                let object = (try? JSONSerialization.jsonObject(with: Data(echo.utf8)) as? [String: Any]) ?? [:]
                let headers = object["headers"] as? [String: String] ?? [:]
                counts.append(headers["x-envoy-attempt-count"] ?? "none")
                #expect(object["body_bytes"] as? Int == 4, "the body goes with every attempt: \(object)")
            }
            #expect(Set(counts) == ["1", "2"], "\(counts)")

            // Nowhere to go: three attempts, then Envoy's answer and flags.
            let failed = try await RawClient.untilClosed(port: clientProxy.outboundPort, sending: "GET / HTTP/1.1\r\nHost: gone\r\nConnection: close\r\n\r\n")
            #expect(failed.hasPrefix("HTTP/1.1 503 "), "\(failed.prefix(300))")
            let line = try await UpgradeTests.accessLogLine(clientLog) { $0["response_code"] as? Int == 503 }
            #expect(line["response_flags"] as? String == "UF,URX", "\(line)")
            #expect(line["upstream_host"] as? String == "127.0.0.1:\(dead)", "\(line)")
            await clientProxy.stop()
        }
    }

    @Test("an upload past what the proxy holds is retried whole on another endpoint when its connection cannot be made: nothing of it went anywhere")
    func uploadRetried() async throws {
        try await DataPathTests().withServer { mesh, serverProxy, server in
            try serverProxy.install(SnapshotBuilder.snapshot())
            let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
            let clientProxy = try await TestProxy(
                workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1)
            let dead = try await Self.closedPort()
            try clientProxy.install(SnapshotBuilder.snapshot(services: [
                ("server", "default", 8080, [("127.0.0.1:\(dead)", server.spiffeID, "server-v0"), ("127.0.0.1:\(serverProxy.inboundPort)", server.spiffeID, "server-v1")])
            ]))
            // The test proxies hold 1 MiB: these bodies go on as uploads. Round robin starts at
            // either endpoint, so some are sent on their second attempt.
            let size = (2 << 20) + 3
            let body = String(repeating: "u", count: size)
            var counts: [String] = []
            for index in 0..<4 {
                let received = try await RawClient.untilClosed(
                    port: clientProxy.outboundPort,
                    sending: "PUT /u\(index) HTTP/1.1\r\nHost: server\r\nContent-Length: \(size)\r\nConnection: close\r\n\r\n\(body)",
                    timeout: .seconds(20))
                #expect(received.hasPrefix("HTTP/1.1 200 "), "\(received.prefix(300))")
                let echo = received.range(of: "\r\n\r\n").map { String(received[$0.upperBound...]) } ?? ""
                let object = (try? JSONSerialization.jsonObject(with: Data(echo.utf8)) as? [String: Any]) ?? [:]
                counts.append((object["headers"] as? [String: String])?["x-envoy-attempt-count"] ?? "none")
                #expect(object["body_bytes"] as? Int == size, "the whole upload goes with the attempt that is made: \(object)")
            }
            #expect(Set(counts) == ["1", "2"], "\(counts)")
            await clientProxy.stop()
        }
    }

    @Test("an endpoint the control plane marks plaintext is called without TLS; mTLS to a plaintext server fails with BoringSSL's reason alone")
    func plaintextEndpoint() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let client = try await mesh.identity(namespace: "default", serviceAccount: "client")
        let clientProxy = try await TestProxy(
            workload: WorkloadInfo(name: "client-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1)
        let address = "127.0.0.1:\(app.port)"
        let identity = "spiffe://cluster.local/ns/legacy/sa/plain"
        try clientProxy.install(SnapshotBuilder.snapshot(
            services: [
                ("plain", "legacy", 8080, [(address, identity, "plain-v1")]),
                ("expects-mtls", "legacy", 8080, [(address, identity, "plain-v1")]),
            ],
            plaintext: [address]))
        let plain = try await RawClient.untilClosed(
            port: clientProxy.outboundPort, sending: "GET /p HTTP/1.1\r\nHost: plain.legacy\r\nConnection: close\r\n\r\n")
        #expect(plain.hasPrefix("HTTP/1.1 200 ") && plain.contains("\"path\""), "\(plain.prefix(300))")
        // The same server where mTLS is expected: the handshake meets plaintext.
        try clientProxy.install(SnapshotBuilder.snapshot(
            version: 2, services: [("expects-mtls", "legacy", 8080, [(address, identity, "plain-v1")])]))
        let failed = try await RawClient.untilClosed(
            port: clientProxy.outboundPort, sending: "GET /m HTTP/1.1\r\nHost: expects-mtls.legacy\r\nConnection: close\r\n\r\n")
        #expect(failed.hasPrefix("HTTP/1.1 503 "), "\(failed.prefix(300))")
        #expect(failed.contains("TLS error: WRONG_VERSION_NUMBER") && !failed.contains(".cc:") && !failed.contains("BoringSSL"), "\(failed)")
        await clientProxy.stop()
    }

    @Test("BoringSSL's reason is read out of its error text, without the library's source file")
    func tlsReason() {
        #expect(TLSFailureText.reason(of: "Error: 268435703 error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER at /x/tls_record.cc:127") == "WRONG_VERSION_NUMBER")
        #expect(TLSFailureText.reason(of: "CERTIFICATE_VERIFY_FAILED") == "CERTIFICATE_VERIFY_FAILED")
    }

    @Test("the back-off before each retry is below Envoy's ceiling for it", arguments: [1, 2])
    func backOff(attempt: Int) {
        let ceiling = Int64((1 << attempt) - 1) * 25_000_000
        for _ in 0..<200 {
            let wait = RetryAttempts.backOff(afterAttempt: attempt).nanoseconds
            #expect(wait >= 0 && wait < ceiling)
        }
    }
}
