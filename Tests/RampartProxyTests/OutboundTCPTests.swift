import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

@testable import RampartProxy

/// Outbound TCP listeners (`--outbound-tcp LOCAL=SERVICE:PORT`): an application's TCP connection
/// to a local port is carried over mTLS to an instance of a mesh service, whose proxy authorizes
/// it on its L4 attributes and splices it to its application.
@Suite("outbound TCP listeners")
struct OutboundTCPTests {
    @Test("LOCAL=SERVICE:PORT is read, and what is not gets a message naming the form")
    func mappings() throws {
        let mapping = try OutboundTCPListener.Mapping(parsing: "127.0.0.1:15432=DB.data:5432")
        #expect(mapping == OutboundTCPListener.Mapping(host: "127.0.0.1", port: 15432, service: "db.data", servicePort: 5432))
        let v6 = try OutboundTCPListener.Mapping(parsing: "[::1]:0=db:5432")
        #expect(v6.host == "::1" && v6.port == 0)
        for bad in ["db:5432", "127.0.0.1:15432", "127.0.0.1:15432=db", "127.0.0.1:15432=db:0", "127.0.0.1:99999=db:5432", ":1=db:1", "127.0.0.1:1=:5432"] {
            #expect(throws: ProxyError.self, "\(bad)") { try OutboundTCPListener.Mapping(parsing: bad) }
            do { _ = try OutboundTCPListener.Mapping(parsing: bad) } catch { #expect(error.reason.contains("LOCAL=SERVICE:PORT") || error.reason.contains("SERVICE:PORT"), "\(error.reason)") }
        }
    }

    /// A client proxy with an outbound TCP listener for `db` (a TCP echo app behind its own
    /// proxy), both logging; `body` gets the listener's port, both logs and both identities.
    func withTCPMesh(
        servicePort: Int? = nil, serverPolicies: [(kind: String, namespace: String, name: String, yaml: String)] = [],
        appProtocol: AppProtocol = .auto, greeting: String? = nil, answerAtEnd: Bool = false,
        _ body: (_ port: Int, _ clientLog: String, _ serverLog: String, _ clientID: String, _ serverID: String) async throws -> Void
    ) async throws {
        try await TCPAndJWTTests().withEchoProxy(name: "db-v1", policies: serverPolicies, appProtocol: appProtocol, greeting: greeting, answerAtEnd: answerAtEnd) {
            serverProxy, serverLog, mesh, serverID in
            let client = try await mesh.identity(namespace: "default", serviceAccount: "app")
            let clientLog = "\(mesh.directory)/client.log"
            let clientProxy = try await TestProxy(
                workload: WorkloadInfo(name: "app-v1", namespace: "default", appPort: 1), identityDirectory: client.directory, appPort: 1, logFile: clientLog)
            try clientProxy.install(
                SnapshotBuilder.snapshot(services: [("db", "default", 5432, [("127.0.0.1:\(serverProxy.inboundPort)", serverID, "db-v1")])]))
            let bound = PortBox()
            let listener = OutboundTCPListener(
                mapping: OutboundTCPListener.Mapping(host: "127.0.0.1", port: 0, service: "db", servicePort: servicePort ?? 5432),
                context: clientProxy.context) { bound.set($0) }
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: listener)], logger: Logger(label: "test.tcp")))
            let running = Task { try? await group.run() }
            func stop() async {
                await group.triggerGracefulShutdown()
                _ = await running.value
                await clientProxy.stop()
            }
            do {
                try await body(try await bound.wait(), clientLog, serverLog, client.spiffeID, serverID)
            } catch {
                await stop()
                throw error
            }
            await stop()
        }
    }

    @Test("a connection to the local port reaches the service's application over mTLS, and both sides log it")
    func carried() async throws {
        try await withTCPMesh { port, clientLog, serverLog, clientID, serverID in
            let reply = try await TCPEcho.exchange(port: port, text: "\u{0}\u{1}SELECT 1;\n")
            #expect(reply == "\u{0}\u{1}SELECT 1;\n")
            let source = try await UpgradeTests.accessLogLine(clientLog) { $0["protocol"] as? String == "TCP" }
            #expect(source["reporter"] as? String == "source", "\(source)")
            #expect(source["destination_service"] as? String == "db.default.svc.cluster.local", "\(source)")
            #expect(source["upstream_cluster"] as? String == "outbound|5432||db.default.svc.cluster.local", "\(source)")
            #expect(source["destination_principal"] as? String == serverID, "\(source)")
            #expect(source["bytes_sent"] as? Int == 12 && source["bytes_received"] as? Int == 12, "\(source)")
            // The server's proxy saw the client's certificate: the connection was mTLS end to end.
            let destination = try await UpgradeTests.accessLogLine(serverLog) { $0["protocol"] as? String == "TCP" }
            #expect(destination["source_principal"] as? String == clientID, "\(destination)")
            #expect(destination["connection_security_policy"] as? String == "mutual_tls", "\(destination)")
        }
    }

    @Test("a client's half-close crosses both proxies over mTLS, and the answer the application sends after it comes back", arguments: [AppProtocol.auto, .tcp])
    func halfClose(appProtocol: AppProtocol) async throws {
        try await withTCPMesh(appProtocol: appProtocol, answerAtEnd: true) { port, clientLog, serverLog, _, _ in
            // The application answers only once it has read to the end of the stream, then closes:
            // the answer arrives only if the FIN was carried through the mTLS hop as a TLS
            // close_notify and the other direction stayed open.
            let request = "\u{0}\u{3}COPY TO STDOUT;\n"
            let received = try await RawClient.untilClosed(port: port, sending: request, halfClose: true)
            #expect(received == "read to the end: " + request)
            let expected = ("read to the end: " + request).utf8.count
            for log in [clientLog, serverLog] {
                let line = try await UpgradeTests.accessLogLine(log) { $0["protocol"] as? String == "TCP" }
                #expect(line["bytes_received"] as? Int == request.utf8.count && line["bytes_sent"] as? Int == expected, "\(line)")
                #expect(line["response_flags"] as? String == "-", "\(line)")
            }
        }
    }

    @Test("behind --app-protocol tcp a server-first application speaks at once, and HTTP passes as bytes")
    func serverFirst() async throws {
        try await withTCPMesh(appProtocol: .tcp, greeting: "220 db ready\r\n") { port, _, serverLog, _, _ in
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            let started = ContinuousClock.now
            let (greeting, echoed) = try await client.executeThenClose { inbound, outbound in
                var received = ""
                var chunks = inbound.makeAsyncIterator()
                // Nothing is sent first: a port sniffed for its protocol would wait 5 s for it.
                while !received.hasSuffix("\r\n"), let chunk = try await chunks.next() { received += String(buffer: chunk) }
                let greeting = received
                let request = "GET /x HTTP/1.1\r\nHost: db\r\n\r\n"
                try await outbound.write(ByteBuffer(string: request))
                received = ""
                while received.utf8.count < request.utf8.count, let chunk = try await chunks.next() { received += String(buffer: chunk) }
                return (greeting, received)
            }
            #expect(greeting == "220 db ready\r\n")
            #expect(ContinuousClock.now - started < .seconds(4), "the greeting took \(ContinuousClock.now - started)")
            // Not parsed as HTTP: no header was added (no x-forwarded-client-cert), and the
            // connection is logged as TCP.
            #expect(echoed == "GET /x HTTP/1.1\r\nHost: db\r\n\r\n")
            let line = try await UpgradeTests.accessLogLine(serverLog) { _ in true }
            #expect(line["protocol"] as? String == "TCP", "\(line)")
        }
    }

    @Test("the destination's policies see the client's identity: a DENY on it closes the connection")
    func denied() async throws {
        let deny = SnapshotBuilder.authorizationPolicy(
            name: "no-app", namespace: "default", body: "action: DENY\nrules:\n- from:\n  - source:\n      principals: [\"cluster.local/ns/default/sa/app\"]")
        try await withTCPMesh(serverPolicies: [deny]) { port, _, serverLog, _, _ in
            #expect(try await TCPEcho.exchange(port: port, text: "\u{0}\u{1}SELECT 1;\n").isEmpty)
            let line = try await UpgradeTests.accessLogLine(serverLog) { $0["protocol"] as? String == "TCP" }
            #expect((line["response_code_details"] as? String)?.contains("rbac_access_denied") == true, "\(line)")
        }
    }

    @Test("a service port the registry does not know closes the connection, logged NR")
    func unknownPort() async throws {
        try await withTCPMesh(servicePort: 6543) { port, clientLog, _, _, _ in
            // Closed at once: the client sees its end (or a reset, for the bytes it sent unread).
            #expect(((try? await TCPEcho.exchange(port: port, text: "\u{0}x\n")) ?? "").isEmpty)
            let line = try await UpgradeTests.accessLogLine(clientLog) { $0["protocol"] as? String == "TCP" }
            #expect(line["response_flags"] as? String == "NR", "\(line)")
        }
    }
}
