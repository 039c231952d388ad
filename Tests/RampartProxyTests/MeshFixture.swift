import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import RampartAPI
import RampartAuthn
import RampartIdentity
import RampartPKI
@testable import RampartProxy
import ServiceLifecycle
import Synchronization
import X509

/// A test mesh: a root CA made by the test, and workload identities it issues, written in the
/// node agent's file layout.
struct MeshFixture {
    let directory: String
    let authority: CertificateAuthority
    let issuer: SVIDIssuer

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-proxy-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        authority = try CAMaterial.createRoot(trustDomain: try TrustDomain("cluster.local"), keyAlgorithm: .ecP256, now: Date())
        issuer = try SVIDIssuer(authority: authority)
    }

    /// Issues an SVID for `ns/sa`, writes cert-chain.pem, key.pem (0600) and root-cert.pem into a
    /// directory of its own, and returns the directory and the leaf's serial.
    func identity(namespace: String, serviceAccount: String, ttl: TimeInterval = 3600) async throws -> (directory: String, serial: String, spiffeID: String) {
        let key = P256.Signing.PrivateKey()
        let id = try SPIFFEID(parsing: "spiffe://cluster.local/ns/\(namespace)/sa/\(serviceAccount)")
        let issued = try await issuer.issue(publicKey: Certificate.PublicKey(key.publicKey), spiffeID: id, ttl: ttl, now: Date())
        let out = (directory as NSString).appendingPathComponent("\(namespace)-\(serviceAccount)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let chain = issued.chainPEM.dropLast().joined(separator: "\n")
        try chain.write(toFile: "\(out)/cert-chain.pem", atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: "\(out)/key.pem", contents: Data(key.pemRepresentation.utf8), attributes: [.posixPermissions: 0o600])
        try authority.rootsPEM().write(toFile: "\(out)/root-cert.pem", atomically: true, encoding: .utf8)
        return (out, issued.serialHex, id.string)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// Builds snapshot messages the way the control plane sends them.
enum SnapshotBuilder {
    static func snapshot(
        version: Int64 = 1, resources: [(kind: String, namespace: String, name: String, yaml: String)] = [],
        services: [(name: String, namespace: String, port: Int, endpoints: [(address: String, spiffeID: String, workload: String)])] = [],
        revoked: [String] = [], plaintext: Set<String> = []
    ) -> Rampart_Config_V1_Snapshot {
        var snapshot = Rampart_Config_V1_Snapshot()
        snapshot.nonce = "n\(version)"
        snapshot.configVersion = version
        snapshot.rootNamespace = "istio-system"
        snapshot.resources = resources.map { item in
            var resource = Rampart_Config_V1_Resource()
            resource.kind = item.kind
            resource.namespace = item.namespace
            resource.name = item.name
            resource.yaml = item.yaml
            return resource
        }
        snapshot.services = services.map { item in
            var service = Rampart_Config_V1_Service()
            service.name = item.name
            service.namespace = item.namespace
            service.port = UInt32(item.port)
            service.endpoints = item.endpoints.map { endpoint in
                var value = Rampart_Config_V1_Endpoint()
                value.address = endpoint.address
                value.spiffeID = endpoint.spiffeID
                value.plaintext = plaintext.contains(endpoint.address)
                value.workload = endpoint.workload
                return value
            }
            return service
        }
        snapshot.revoked = revoked.map { serial in
            var entry = Rampart_Config_V1_RevokedCertificate()
            entry.serial = serial
            return entry
        }
        return snapshot
    }

    /// An AuthorizationPolicy's YAML.
    static func authorizationPolicy(name: String, namespace: String, body: String) -> (kind: String, namespace: String, name: String, yaml: String) {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata:
              name: \(name)
              namespace: \(namespace)
            spec:
            \(body.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
            """
        return ("AuthorizationPolicy", namespace, name, yaml)
    }

    /// A PeerAuthentication's YAML.
    static func peerAuthentication(name: String, namespace: String, mode: String) -> (kind: String, namespace: String, name: String, yaml: String) {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata:
              name: \(name)
              namespace: \(namespace)
            spec:
              mtls:
                mode: \(mode)
            """
        return ("PeerAuthentication", namespace, name, yaml)
    }
}

/// A small HTTP application on loopback that answers every request with 200 and a JSON echo of
/// the method, path, protocol and headers it received. The HTTP/2 variant (h2c, prior knowledge)
/// answers with gRPC-style trailers.
final class EchoApp: Sendable {
    typealias Stream = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    enum Listener: Sendable {
        case http1(NIOAsyncChannel<Stream, Never>)
        case http2(NIOAsyncChannel<NIOHTTP2Handler.AsyncStreamMultiplexer<Stream>, Never>)
    }

    let listener: Listener
    var serverChannel: any Channel {
        switch listener {
        case .http1(let channel): return channel.channel
        case .http2(let channel): return channel.channel
        }
    }
    var port: Int { serverChannel.localAddress?.port ?? 0 }

    init(http2: Bool = false) async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        if http2 {
            listener = .http2(try await bootstrap.bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .server) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            return try Stream(wrappingChannelSynchronously: stream)
                        }
                    }
                }
            })
        } else {
            listener = .http1(try await bootstrap.bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Stream(wrappingChannelSynchronously: channel)
                }
            })
        }
    }

    /// Serves until the task is cancelled.
    func run() async {
        try? await withThrowingDiscardingTaskGroup { group in
            switch listener {
            case .http1(let channel):
                try await channel.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await Self.serve(connection, trailers: false) }
                    }
                }
            case .http2(let channel):
                await LoopbackHTTP.runHTTP2(channel) { stream, _ in await Self.serve(stream, trailers: true) }
            }
        }
    }

    static func serve(_ connection: Stream, trailers: Bool) async {
                        try? await connection.executeThenClose { inbound, outbound in
                            var head: HTTPRequestHead?
                            var body = 0
                            for try await part in inbound {
                                switch part {
                                case .head(let value): head = value; body = 0
                                case .body(let chunk): body += chunk.readableBytes
                                case .end:
                                    guard let request = head else { continue }
                                    // A gRPC error answered "trailers-only": the status in the only headers.
                                    if trailers && request.uri.hasSuffix("/Missing") {
                                        let only = HTTPHeaders([("content-type", "application/grpc"), ("grpc-status", "5"), ("grpc-message", "no such thing")])
                                        connection.channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: only)), promise: nil)
                                        try await connection.channel.writeAndFlush(HTTPServerResponsePart.end(nil))
                                        continue
                                    }
                                    var headers: [String: String] = [:]
                                    for (name, value) in request.headers { headers[name.lowercased()] = value }
                                    var object: [String: Any] = [
                                        "method": request.method.rawValue, "path": request.uri, "headers": headers, "body_bytes": body,
                                        "version": "\(request.version.major).\(request.version.minor)",
                                    ]
                                    // `x-response-bytes: N` asks for a body N bytes longer, for responses past flow-control windows.
                                    if let padding = headers["x-response-bytes"].flatMap(Int.init) {
                                        object["padding"] = String(repeating: "p", count: padding)
                                    }
                                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                                    var responseHeaders = HTTPHeaders()
                                    responseHeaders.add(name: "content-type", value: "application/json")
                                    responseHeaders.add(name: "content-length", value: String(data.count))
                                    // Written straight to the channel and waited for: an HTTP/2 stream closed with its
                                    // answer still held for the client's flow-control window would cut the answer short.
                                    let channel = connection.channel
                                    channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: responseHeaders)), promise: nil)
                                    channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: data))), promise: nil)
                                    try await channel.writeAndFlush(
                                        HTTPServerResponsePart.end(trailers ? HTTPHeaders([("grpc-status", "0"), ("grpc-message", "echoed")]) : nil))
                                }
                            }
                        }
    }
}

/// One in-process proxy: its context and listeners, run in a ServiceGroup the test shuts down.
extension MeshFixture {
    /// A proxy for the workload `server-v1` of `default`, with its own identity, in front of the
    /// application on `appPort`, its config installed; `permissive` makes the mesh PERMISSIVE, so
    /// plaintext test clients reach its inbound port.
    func serverProxy(
        appPort: Int, appProtocol: AppProtocol = .auto, logFile: String? = nil, idleTimeouts: IdleTimeouts = .envoy,
        permissive: Bool
    ) async throws -> TestProxy {
        let server = try await identity(namespace: "default", serviceAccount: "server")
        let proxy = try await TestProxy(
            workload: WorkloadInfo(name: "server-v1", namespace: "default", appPort: appPort), identityDirectory: server.directory,
            appPort: appPort, logFile: logFile, appProtocol: appProtocol, idleTimeouts: idleTimeouts)
        let resources = permissive ? [SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "PERMISSIVE")] : []
        try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: resources))
        return proxy
    }
}

final class TestProxy: Sendable {
    let context: ProxyContext
    let inboundPort: Int
    let outboundPort: Int
    let group: ServiceGroup

    init(
        workload: WorkloadInfo, identityDirectory: String, appPort: Int, logFile: String? = nil, upstreamTimeout: TimeAmount = .seconds(10),
        appProtocol: AppProtocol = .auto, acceptHTTP10: Bool = false, idleTimeouts: IdleTimeouts = .envoy,
        reportingInterval: TimeAmount = .seconds(15), tracing: TracingSettings? = nil
    ) async throws {
        var logger = Logger(label: "test.proxy")
        logger.logLevel = .warning
        let identity = IdentityWatcher(directory: identityDirectory, logger: logger)
        try identity.reload()
        let tracer = try tracing.map { try ProxyTracing(settings: $0, workload: workload, logger: logger) }
        context = ProxyContext(
            workload: workload, appHost: "127.0.0.1", appPort: appPort, identity: identity, config: ConfigHolder(),
            upstream: UpstreamClient(maxBodyBytes: 1 << 20), authenticator: RequestAuthenticator(), metrics: ProxyMetrics(),
            accessLog: try AccessLog(path: logFile, flushInterval: .milliseconds(100)), maxBodyBytes: 1 << 20, upstreamTimeout: upstreamTimeout, outboundPolicy: .registryOnly, appProtocol: appProtocol, acceptHTTP10: acceptHTTP10,
            idleTimeouts: idleTimeouts, reportingInterval: reportingInterval, tracing: tracer, logger: logger
        )
        let inboundBound = PortBox()
        let outboundBound = PortBox()
        let inbound = InboundListener(host: "127.0.0.1", port: 0, context: context) { inboundBound.set($0) }
        let outbound = OutboundListener(host: "127.0.0.1", port: 0, context: context) { outboundBound.set($0) }
        let exporter: [ServiceGroupConfiguration.ServiceConfiguration] = tracer.map { [.init(service: $0.service)] } ?? []
        group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: exporter + [.init(service: inbound), .init(service: outbound)], logger: logger))
        let group = self.group
        Task { try? await group.run() }
        inboundPort = try await inboundBound.wait()
        outboundPort = try await outboundBound.wait()
    }

    func install(_ snapshot: Rampart_Config_V1_Snapshot) throws {
        context.config.install(try ProxyConfig.compile(snapshot, workload: context.workload))
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        context.upstream.shutdown()
    }
}

/// A port reported by a listener once it binds.
final class PortBox: Sendable {
    private let value = Synchronization.Mutex<Int?>(nil)

    func set(_ port: Int) { value.withLock { $0 = port } }

    func wait() async throws -> Int {
        for _ in 0..<500 {
            if let port = value.withLock({ $0 }) { return port }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ProxyError(.badConfiguration, "the listener did not bind within 5 s")
    }
}

/// A client that talks to a proxy the way another proxy or an application does.
enum TestClient {
    /// A plain HTTP request.
    static func plain(
        port: Int, method: HTTPMethod = .GET, path: String = "/", host: String = "app", headers: [(String, String)] = [], http2: Bool = false
    ) async throws -> BufferedResponse {
        let client = UpstreamClient(maxBodyBytes: 1 << 20)
        defer { client.shutdown() }
        return try await client.send(request(method: method, path: path, host: host, headers: headers), to: UpstreamTarget(host: "127.0.0.1", port: port, http2: http2), timeout: .seconds(10)).response
    }

    /// An mTLS request presenting `identityDirectory`'s certificate.
    static func mtls(
        port: Int, identityDirectory: String, method: HTTPMethod = .GET, path: String = "/", host: String = "app", expected: Set<String>? = nil,
        headers: [(String, String)] = [], http2: Bool = false
    ) async throws -> UpstreamResult {
        let identity = try ProxyIdentity(directory: identityDirectory)
        let contexts = try TLSContexts(identity: identity)
        let verifier = PeerVerifier(roots: identity.roots, revoked: RevocationList(serials: []), expected: expected)
        let client = UpstreamClient(maxBodyBytes: 1 << 20)
        defer { client.shutdown() }
        let tls = TLSOrigination(generation: 1, verifier: verifier, context: http2 ? contexts.clientHTTP2 : contexts.client)
        return try await client.send(request(method: method, path: path, host: host, headers: headers), to: UpstreamTarget(host: "127.0.0.1", port: port, tls: tls, http2: http2), timeout: .seconds(10))
    }

    static func request(method: HTTPMethod = .GET, path: String, host: String, headers: [(String, String)]) -> BufferedRequest {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "host", value: host)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        return BufferedRequest(head: head)
    }

    /// The echo app's JSON body.
    static func echo(_ response: BufferedResponse) throws -> [String: Any] {
        let data = Data(response.body.readableBytesView)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ProxyError(.upstream, "the response is not the echo app's JSON: \(String(decoding: data, as: UTF8.self))")
        }
        return object
    }
}
