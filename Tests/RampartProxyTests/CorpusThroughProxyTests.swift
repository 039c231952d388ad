import Crypto
import Foundation
import JWTKit
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RampartPolicy
@testable import RampartProxy
import Testing

/// The authorization corpora decided by the enforcement point itself: each case whose request
/// can be made for real on loopback (an mTLS peer with a certificate for the case's principal,
/// or plaintext; the case's method, host, path and headers) is sent to a live proxy whose
/// workload is the case's destination, with the case's policies installed as the control plane
/// streams them. The status the client gets must be the case's outcome.
///
/// A case's token, given as its outcome (valid, with these claims), is signed for real: by the
/// test's key, whose JWKS replaces the corpus's key server in the policies, or, for an invalid
/// one, by another key under the same key id.
///
/// A TCP case opens a connection (over mTLS, or plaintext) to a proxy in front of a TCP echo
/// application and writes bytes that are no HTTP: allowed, they come back; denied, the proxy
/// closes the connection.
///
/// Left out: cases that need a source address other than loopback, a token in a place other
/// than the `Authorization` header or given raw, a key server that fails or is slow, an
/// ext-authz answer, an SNI, a destination address, or a principal in a trust domain this
/// test's CA does not sign for.
@Suite("the corpora through a live proxy", .serialized)
struct CorpusThroughProxyTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// A case the proxy can be asked on loopback, with what it needs.
    struct WireCase {
        let id: String
        let tcp: Bool
        let documents: [(kind: String, namespace: String, name: String, yaml: String)]
        let namespace: String
        let labels: [String: String]
        let port: Int?
        let principal: (namespace: String, serviceAccount: String)?
        let method: String
        let host: String
        let path: String
        let headers: [(String, String)]
        let expected: String
        let status: Int?
        /// The token's claims and whether it is to verify, when the case carries one.
        let token: (claims: [String: Any], valid: Bool)?
    }

    /// Where the corpus names its key servers; both stand for keys the test replaces.
    static let keyServers = [#"jwksUri: "<JWKS server>""#, "jwksUri: <JWKS server>", #"jwksUri: "https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json""#]

    static func cases(_ file: String) throws -> (cases: [WireCase], skipped: Int) {
        let text = try String(contentsOf: fixtures.appendingPathComponent(file), encoding: .utf8)
        guard let corpus = try PlainYAML.parse(text) as? [String: Any], let sets = corpus["policy_sets"] as? [String: String],
            let items = corpus["cases"] as? [[String: Any]]
        else { throw ProxyError(.badConfiguration, "\(file) is not an authorization corpus") }
        var cases: [WireCase] = []
        var skipped = 0
        for item in items {
            let yaml = (item["policy_set"] as? [String] ?? []).compactMap { sets[$0] }.joined(separator: "\n---\n")
            guard let request = item["request"] as? [String: Any], let wire = wireCase(item, request, yaml) else {
                skipped += 1
                continue
            }
            cases.append(wire)
        }
        return (cases, skipped)
    }

    /// The case as a request on loopback, or nil when it cannot be made there.
    static func wireCase(_ item: [String: Any], _ request: [String: Any], _ yaml: String) -> WireCase? {
        let source = request["source"] as? [String: Any] ?? [:]
        let destination = request["destination"] as? [String: Any] ?? [:]
        let tcp = (request["protocol"] as? String ?? "HTTP").uppercased() == "TCP"
        if request["ext_authz"] != nil || request["sni"] != nil
            || source["ip"] != nil || source["remote_ip"] != nil || destination["ip"] != nil
        {
            return nil
        }
        var token: (claims: [String: Any], valid: Bool)?
        if let jwt = request["jwt"] as? [String: Any], jwt["present"] as? Bool ?? true {
            guard jwt["raw"] == nil, (jwt["location"] as? String ?? "header") == "header" else { return nil }
            token = (jwt["claims"] as? [String: Any] ?? [:], jwt["valid"] as? Bool ?? true)
        }
        // Key servers other than the two the test stands in for would be fetched from the network
        // (or stand for one that fails); keys given inline are keys the test cannot sign with.
        let remaining = keyServers.reduce(yaml) { $0.replacingOccurrences(of: $1, with: "") }
        if remaining.contains("jwksUri") || remaining.contains("jwks:") || yaml.contains("CUSTOM") { return nil }
        var principal: (String, String)?
        if let text = source["principal"] as? String {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 5, parts[0] == "cluster.local", parts[1] == "ns", parts[3] == "sa", source["mtls"] as? Bool != false else { return nil }
            principal = (String(parts[2]), String(parts[4]))
        } else if source["mtls"] as? Bool == true {
            return nil
        }
        var documents: [(kind: String, namespace: String, name: String, yaml: String)] = []
        for document in yaml.components(separatedBy: "\n---\n") {
            guard let object = try? PlainYAML.parse(document) as? [String: Any], let kind = object["kind"] as? String,
                let metadata = object["metadata"] as? [String: Any], let name = metadata["name"] as? String
            else { continue }
            documents.append((kind, metadata["namespace"] as? String ?? "default", name, document))
        }
        let headers = (request["headers"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.flatMap { name, value -> [(String, String)] in
            if let values = value as? [Any] { return values.map { (name, "\($0)") } }
            return [(name, "\(value)")]
        }
        return WireCase(
            id: item["id"] as? String ?? "?", tcp: tcp, documents: documents, namespace: destination["namespace"] as? String ?? "default",
            labels: (destination["labels"] as? [String: Any] ?? [:]).mapValues { "\($0)" }, port: destination["port"] as? Int,
            principal: principal, method: request["method"] as? String ?? "GET", host: request["host"] as? String ?? "app",
            path: request["path"] as? String ?? "/", headers: headers, expected: "\(item["expected"] ?? "")",
            status: item["http_status"] as? Int, token: token)
    }

    /// The case's policies with the destination port replaced by the echo app's, which is what
    /// the proxy reports as `destination.port`, in every place a port is written (with leading
    /// zeros too, which Istio reads as the same port); other ports stay as they are.
    static func renumbered(_ yaml: String, from port: Int?, to appPort: Int) -> String {
        guard let port, let expression = try? NSRegularExpression(pattern: #"(?<=["' \[{,])0*\#(port)(?=["':\],}\n])"#) else { return yaml }
        return expression.stringByReplacingMatches(
            in: yaml, range: NSRange(yaml.startIndex..., in: yaml), withTemplate: String(appPort))
    }

    /// Writes `text` on a TCP connection, over mTLS with the identity in `identityDirectory`
    /// (offering no ALPN, as a TCP client's sidecar does) or plaintext, and returns what comes
    /// back before the server closes, or up to the length of `text`.
    static func tcpExchange(port: Int, identityDirectory: String?, text: String) async throws -> String {
        var context: NIOSSLContext?
        if let identityDirectory {
            let identity = try ProxyIdentity(directory: identityDirectory)
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateChain = identity.chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(identity.key)
            configuration.certificateVerification = .none
            context = try NIOSSLContext(configuration: configuration)
        }
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil)) }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let channel = client.channel
        let watchdog = channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        defer { watchdog.cancel() }
        return try await client.executeThenClose { inbound, outbound in
            var received = ""
            do {
                try await outbound.write(ByteBuffer(string: text))
                for try await chunk in inbound {
                    received += String(buffer: chunk)
                    if received.utf8.count >= text.utf8.count { break }
                }
            } catch {
                // A refused handshake or a reset: what came before it is the answer.
            }
            return received
        }
    }

    @Test("every case the proxy can be asked on loopback gets the corpus's outcome", arguments: ["authz-cases.yaml", "authz-derived-cases.yaml"])
    func corpusThroughProxy(file: String) async throws {
        let (cases, skipped) = try Self.cases(file)
        #expect(cases.count > 60, "\(cases.count) cases can be sent, \(skipped) cannot")
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let echo = try await TCPEcho()
        let echoTask = Task { await echo.run() }
        defer { echoTask.cancel() }
        let server = try await mesh.identity(namespace: "ns1", serviceAccount: "b")
        let signer = try await CorpusTokens()
        var clients: [String: String] = [:]
        var failures: [String] = []
        var invalid = 0
        for wire in cases {
            let appPort = wire.tcp ? echo.port : app.port
            let workload = WorkloadInfo(
                name: "corpus", namespace: wire.namespace, labels: wire.labels, services: [ServicePort(name: "b", port: appPort)], appPort: appPort)
            let proxy = try await TestProxy(workload: workload, identityDirectory: server.directory, appPort: appPort)
            let resources = wire.documents.map { document in
                let yaml = Self.keyServers.reduce(Self.renumbered(document.yaml, from: wire.port, to: appPort)) {
                    $0.replacingOccurrences(of: $1, with: "jwks: '\(signer.jwks)'")
                }
                return (document.kind, document.namespace, document.name, yaml)
            }
            do {
                try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: resources))
            } catch {
                // A resource the control plane would have refused (apply validates as the webhook
                // does) never reaches a proxy; `authz check` evaluates it as written instead.
                invalid += 1
                await proxy.stop()
                continue
            }
            let method = HTTPMethod(rawValue: wire.method)
            // A client's sidecar sends plaintext to a port whose mode is DISABLE (Istio's auto
            // mTLS), so the peer's identity never reaches the server: send it so.
            let mode = PolicyEngine(yaml: wire.documents.map(\.yaml).joined(separator: "\n---\n")).snapshot
                .workload(namespace: wire.namespace, labels: wire.labels).peer.mode(port: wire.port)
            var headers = wire.headers
            if let token = wire.token {
                // The signed token takes the place of any stand-in the case writes there.
                headers.removeAll { $0.0.lowercased() == "authorization" }
                headers.append(("authorization", "Bearer " + (try await signer.sign(token.claims, valid: token.valid))))
            }
            let got: String
            do {
                var identity: String?
                if let (namespace, serviceAccount) = wire.principal, mode != .disable {
                    let key = "\(namespace)/\(serviceAccount)"
                    if clients[key] == nil { clients[key] = try await mesh.identity(namespace: namespace, serviceAccount: serviceAccount).directory }
                    identity = clients[key]
                }
                if wire.tcp {
                    let bytes = "\u{0}\u{1}corpus \(wire.id)\n"
                    let reply = try await Self.tcpExchange(port: proxy.inboundPort, identityDirectory: identity, text: bytes)
                    got = reply == bytes ? "200" : reply.isEmpty ? "closed" : "unexpected reply \(reply.debugDescription)"
                } else if let identity {
                    let result = try await TestClient.mtls(
                        port: proxy.inboundPort, identityDirectory: identity, method: method, path: wire.path, host: wire.host, headers: headers)
                    got = "\(result.response.head.status.code)"
                } else {
                    let response = try await TestClient.plain(port: proxy.inboundPort, method: method, path: wire.path, host: wire.host, headers: headers)
                    got = "\(response.head.status.code)"
                }
            } catch {
                // A plaintext connection a STRICT port refuses is closed before any HTTP answer.
                got = wire.principal == nil || mode == .disable ? "closed" : "error: \(error)"
            }
            await proxy.stop()
            let wanted: Set<String> =
                switch wire.expected {
                case "allow": ["200"]
                case _ where wire.tcp: ["closed"]
                case "401": ["401"]
                default: wire.status.map { $0 == 403 ? ["403", "closed"] : ["\($0)"] } ?? ["403", "closed", "400", "404"]
                }
            if !wanted.contains(got) { failures.append("\(wire.id): expected \(wire.expected) (\(wire.status.map(String.init) ?? "-")), got \(got)") }
        }
        try? await app.serverChannel.close()
        #expect(invalid < cases.count / 10, "\(invalid) cases hold resources a proxy refuses")
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count - invalid) cases disagree:\n\(failures.joined(separator: "\n"))")
    }
}

/// Signs tokens with any claims: with the key the JWKS publishes, or with another key under the
/// same key id, which fails verification.
struct CorpusTokens {
    let jwks: String
    private let good = JWTKeyCollection()
    private let bad = JWTKeyCollection()

    init() async throws {
        let key = P256.Signing.PrivateKey()
        let point = Array(key.publicKey.x963Representation)
        func b64(_ bytes: ArraySlice<UInt8>) -> String {
            Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        jwks = #"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"\#(b64(point[1...32]))","y":"\#(b64(point[33...64]))"}]}"#
        await good.add(ecdsa: try ES256PrivateKey(backing: key), kid: "k1")
        await bad.add(ecdsa: try ES256PrivateKey(backing: P256.Signing.PrivateKey()), kid: "k1")
    }

    func sign(_ claims: [String: Any], valid: Bool) async throws -> String {
        try await (valid ? good : bad).sign(AnyClaims(claims: claims.mapValues(JSONValue.init)), kid: "k1")
    }
}

/// A JWT payload of whatever claims a case gives.
private struct AnyClaims: JWTPayload {
    let claims: [String: JSONValue]

    init(claims: [String: JSONValue]) { self.claims = claims }

    init(from decoder: any Decoder) throws {
        claims = try [String: JSONValue](from: decoder)
    }

    func encode(to encoder: any Encoder) throws { try claims.encode(to: encoder) }

    func verify(using algorithm: some JWTAlgorithm) throws {}
}

/// A JSON value read from the corpus's YAML.
private enum JSONValue: Codable, Sendable {
    case string(String), integer(Int), number(Double), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    init(_ value: Any) {
        switch value {
        case let bool as Bool: self = .bool(bool)
        case let integer as Int: self = .integer(integer)
        case let number as Double: self = .number(number)
        case let string as String: self = .string(string)
        case let array as [Any]: self = .array(array.map(JSONValue.init))
        case let object as [String: Any]: self = .object(object.mapValues(JSONValue.init))
        default: self = .null
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let integer = try? container.decode(Int.self) {
            self = .integer(integer)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else if let object = try? container.decode([String: JSONValue].self) {
            self = .object(object)
        } else {
            self = .null
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}
