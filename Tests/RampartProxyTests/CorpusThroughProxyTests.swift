import Crypto
import Foundation
import JWTKit
import NIOCore
import NIOHTTP1
import NIOSSL
import RampartAuthn
@testable import RampartPolicy
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
        return try await RawClient.exchange(port: port, tls: context, sending: text, timeout: .seconds(5)) {
            $0.utf8.count >= text.utf8.count
        }.received
    }

    /// The applications, identities and signer the cases share; one proxy per case.
    final class Harness {
        let mesh: MeshFixture
        let app: EchoApp
        let echo: TCPEcho
        let tasks: [Task<Void, Never>]
        let server: String
        let signer: CorpusTokens
        private var clients: [String: String] = [:]

        init() async throws {
            mesh = try MeshFixture()
            app = try await EchoApp()
            echo = try await TCPEcho()
            tasks = [Task { [app] in await app.run() }, Task { [echo] in await echo.run() }]
            server = try await mesh.identity(namespace: "ns1", serviceAccount: "b").directory
            signer = try await CorpusTokens()
        }

        func close() async {
            tasks.forEach { $0.cancel() }
            try? await app.serverChannel.close()
            try? await echo.channel.channel.close()
            mesh.remove()
        }

        /// The application port a case's proxy fronts.
        func appPort(_ wire: WireCase) -> Int { wire.tcp ? echo.port : app.port }

        /// The case's resources as the control plane streams them: the destination port
        /// renumbered to the application's, and the test's JWKS in place of the key server.
        func resources(_ wire: WireCase) -> [(kind: String, namespace: String, name: String, yaml: String)] {
            wire.documents.map { document in
                let yaml = CorpusThroughProxyTests.keyServers.reduce(
                    CorpusThroughProxyTests.renumbered(document.yaml, from: wire.port, to: appPort(wire))
                ) { $0.replacingOccurrences(of: $1, with: "jwks: '\(signer.jwks)'") }
                return (document.kind, document.namespace, document.name, yaml)
            }
        }

        /// A proxy for the case's destination with its policies installed, or nil when a proxy
        /// refuses them (a resource the control plane's validation would have refused, which
        /// `authz check` evaluates as written instead).
        func proxy(for wire: WireCase) async throws -> TestProxy? {
            let port = appPort(wire)
            let workload = WorkloadInfo(
                name: "corpus", namespace: wire.namespace, labels: wire.labels, services: [ServicePort(name: "b", port: port)], appPort: port)
            let proxy = try await TestProxy(workload: workload, identityDirectory: server, appPort: port)
            do {
                try proxy.install(SnapshotBuilder.snapshot(version: 2, resources: resources(wire)))
                return proxy
            } catch {
                await proxy.stop()
                return nil
            }
        }

        /// The mode of the case's destination port. A client's sidecar sends plaintext to a port
        /// whose mode is DISABLE (Istio's auto mTLS), so the peer's identity never reaches it.
        func mode(_ wire: WireCase) -> MTLSMode {
            PolicyEngine(yaml: wire.documents.map(\.yaml).joined(separator: "\n---\n")).snapshot
                .workload(namespace: wire.namespace, labels: wire.labels).peer.mode(port: wire.port)
        }

        /// Sends the case's request to `proxy`; returns the status, `closed` when the
        /// connection was closed without an answer, or what went wrong.
        func send(_ wire: WireCase, to proxy: TestProxy) async throws -> String {
            let mode = mode(wire)
            var headers = wire.headers
            if let token = wire.token {
                // The signed token takes the place of any stand-in the case writes there.
                headers.removeAll { $0.0.lowercased() == "authorization" }
                headers.append(("authorization", "Bearer " + (try await signer.sign(token.claims, valid: token.valid))))
            }
            var identity: String?
            if let (namespace, serviceAccount) = wire.principal, mode != .disable {
                let key = "\(namespace)/\(serviceAccount)"
                if clients[key] == nil { clients[key] = try await mesh.identity(namespace: namespace, serviceAccount: serviceAccount).directory }
                identity = clients[key]
            }
            do {
                if wire.tcp {
                    let bytes = "\u{0}\u{1}corpus \(wire.id)\n"
                    let reply = try await CorpusThroughProxyTests.tcpExchange(port: proxy.inboundPort, identityDirectory: identity, text: bytes)
                    return reply == bytes ? "200" : reply.isEmpty ? "closed" : "unexpected reply \(reply.debugDescription)"
                }
                let method = HTTPMethod(rawValue: wire.method)
                if let identity {
                    let result = try await TestClient.mtls(
                        port: proxy.inboundPort, identityDirectory: identity, method: method, path: wire.path, host: wire.host, headers: headers)
                    return "\(result.response.head.status.code)"
                }
                let response = try await TestClient.plain(port: proxy.inboundPort, method: method, path: wire.path, host: wire.host, headers: headers)
                return "\(response.head.status.code)"
            } catch {
                // A plaintext connection a STRICT port refuses is closed before any HTTP answer.
                return identity == nil ? "closed" : "error: \(error)"
            }
        }
    }

    @Test("every case the proxy can be asked on loopback gets the corpus's outcome", arguments: ["authz-cases.yaml", "authz-derived-cases.yaml"])
    func corpusThroughProxy(file: String) async throws {
        let (cases, skipped) = try Self.cases(file)
        #expect(cases.count > 60, "\(cases.count) cases can be sent, \(skipped) cannot")
        let harness = try await Harness()
        var failures: [String] = []
        var invalid = 0
        for wire in cases {
            guard let proxy = try await harness.proxy(for: wire) else {
                invalid += 1
                continue
            }
            let got = try await harness.send(wire, to: proxy)
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
        await harness.close()
        #expect(invalid < cases.count / 10, "\(invalid) cases hold resources a proxy refuses")
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count - invalid) cases disagree:\n\(failures.joined(separator: "\n"))")
    }
}

/// The proxy against `authz check`'s evaluation on requests the corpus does not hold: each HTTP
/// case's request, changed in one to three of its path (escaped, doubled and back slashes, dot
/// segments, case, a query), method, host (case, a port, a trailing dot), headers, peer and
/// token, with values taken from the other cases. The status the proxy answers must be the one
/// the evaluation `authz check` runs gives for the same request.
extension CorpusThroughProxyTests {
    @Test("mutated corpus requests get from the proxy the status the evaluation gives", arguments: ["authz-cases.yaml", "authz-derived-cases.yaml"])
    func mutatedThroughProxy(file: String) async throws {
        let cases = try Self.cases(file).cases.filter { !$0.tcp }
        var mutator = WireMutator(cases: cases, seed: file.utf8.count)
        let harness = try await Harness()
        var failures: [String] = []
        var sent = 0
        for wire in cases {
            guard let proxy = try await harness.proxy(for: wire) else { continue }
            let snapshot = PolicyEngine(yaml: harness.resources(wire).map(\.yaml).joined(separator: "\n---\n")).snapshot
            for _ in 0..<4 {
                let variant = mutator.mutate(wire)
                let plaintext = variant.principal == nil || harness.mode(variant) == .disable
                guard let request = try? AuthzRequest(object: variant.requestObject(appPort: harness.appPort(variant), plaintext: plaintext)) else {
                    continue
                }
                let decision = snapshot.evaluate(request)
                let got = try await harness.send(variant, to: proxy)
                sent += 1
                let wanted = "\(decision.status)"
                if got != wanted && !(got == "closed" && plaintext && decision.status == 403) {
                    failures.append("\(variant.id): \(variant.method) \(variant.path.debugDescription) host \(variant.host) principal \(variant.principal.map { "\($0.namespace)/\($0.serviceAccount)" } ?? "none") headers \(variant.headers) token \(variant.token.map { "\($0.valid)" } ?? "none"): evaluation \(wanted) (\(decision.reason)), proxy \(got)")
                }
            }
            await proxy.stop()
        }
        await harness.close()
        #expect(sent > cases.count * 3, "\(sent) mutated requests sent")
        #expect(failures.isEmpty, "\(failures.count) of \(sent) disagree:\n\(failures.prefix(20).joined(separator: "\n"))")
    }
}

extension CorpusThroughProxyTests.WireCase {
    /// The request as `authz check` reads it, as the proxy sees it arrive: from loopback, to the
    /// application's port, with the peer's principal only over mTLS.
    func requestObject(appPort: Int, plaintext: Bool) -> [String: Any] {
        var source: [String: Any] = ["ip": "127.0.0.1"]
        if let principal, !plaintext { source["principal"] = "cluster.local/ns/\(principal.namespace)/sa/\(principal.serviceAccount)" }
        var object: [String: Any] = [
            "protocol": "HTTP", "source": source,
            "destination": ["namespace": namespace, "labels": labels, "port": appPort, "ip": "127.0.0.1"] as [String: Any],
            "method": method, "host": host, "path": path,
            "headers": Dictionary(headers.map { ($0.0.lowercased(), [$0.1]) }, uniquingKeysWith: +).mapValues { $0.count == 1 ? $0[0] as Any : $0 as Any },
        ]
        if let token { object["jwt"] = ["present": true, "valid": token.valid, "claims": token.claims] as [String: Any] }
        return object
    }

    func with(
        method: String? = nil, host: String? = nil, path: String? = nil, headers: [(String, String)]? = nil,
        principal: (namespace: String, serviceAccount: String)?? = .none, token: (claims: [String: Any], valid: Bool)?? = .none
    ) -> Self {
        Self(
            id: id, tcp: tcp, documents: documents, namespace: namespace, labels: labels, port: port,
            principal: principal ?? self.principal, method: method ?? self.method, host: host ?? self.host, path: path ?? self.path,
            headers: headers ?? self.headers, expected: expected, status: status, token: token ?? self.token)
    }
}

/// Changes one to three fields of a case's request, with values from the other cases.
struct WireMutator {
    var random: SeededGenerator
    let paths: [String]
    let hosts: [String]
    let headers: [(String, String)]
    let principals: [(namespace: String, serviceAccount: String)]
    let tokens: [(claims: [String: Any], valid: Bool)]

    init(cases: [CorpusThroughProxyTests.WireCase], seed: Int) {
        random = SeededGenerator(seed: UInt64(seed))
        paths = Array(Set(cases.map(\.path))).sorted()
        hosts = Array(Set(cases.map(\.host))).sorted()
        headers = cases.flatMap(\.headers).filter { $0.0.lowercased() != "authorization" }
        principals = cases.compactMap(\.principal)
        tokens = cases.compactMap(\.token)
    }

    mutating func mutate(_ wire: CorpusThroughProxyTests.WireCase) -> CorpusThroughProxyTests.WireCase {
        var variant = wire
        for _ in 0...random.index(3) {
            switch random.index(7) {
            case 0, 1: variant = variant.with(path: bend(random.pick(paths)))
            case 2: variant = variant.with(method: random.pick(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get"]))
            case 3:
                let host = random.pick(hosts)
                variant = variant.with(host: [host, host.uppercased(), host + ":8080", host + ".", "x" + host][random.index(5)])
            case 4:
                guard !headers.isEmpty else { continue }
                var list = variant.headers
                let header = random.pick(headers)
                if random.chance(0.3) { list.removeAll { $0.0.lowercased() != "authorization" } }
                list.append(random.chance(0.2) ? (header.0.uppercased(), header.1 + "x") : header)
                variant = variant.with(headers: list)
            case 5: variant = variant.with(principal: random.chance(0.2) || principals.isEmpty ? .some(nil) : .some(random.pick(principals)))
            default:
                // Tokens go in `Authorization`, which rules naming other places do not read.
                let locations = ["fromHeaders", "fromParams", "fromCookies"]
                guard !variant.documents.contains(where: { document in locations.contains { document.yaml.contains($0) } }) else { continue }
                variant = variant.with(token: random.chance(0.3) || tokens.isEmpty ? .some(nil) : .some(random.pick(tokens)))
            }
        }
        return variant
    }

    /// A path in one of the forms Istio's normalization treats; the first `/` stays, so that
    /// the target is in origin form.
    mutating func bend(_ path: String) -> String {
        guard path.hasPrefix("/") else { return path }
        let rest = String(path.dropFirst())
        switch random.index(10) {
        case 0: return path.uppercased()
        case 1: return "/" + rest.replacingOccurrences(of: "/", with: "//")
        case 2: return "/" + rest.replacingOccurrences(of: "/", with: random.pick(["%2F", "%2f", "%5C", "%5c"]))
        case 3: return "/x/.." + path
        case 4: return "/" + rest.replacingOccurrences(of: "/", with: "/./")
        case 5: return path + random.pick(["?a=b", "#f", "/", "?q=/admin"])
        case 6: return path + "/" + random.pick(paths).dropFirst()
        case 7: return "/" + rest.replacingOccurrences(of: "/", with: "/%2e%2e/")
        default: return path
        }
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
        try await (valid ? good : bad).sign(AnyClaims(claims: claims.mapValues(Self.json)), kid: "k1")
    }

    /// A value read from the corpus's YAML as JSON.
    static func json(_ value: Any) -> JSONValue {
        switch value {
        case let bool as Bool: .bool(bool)
        case let integer as Int: .number(Double(integer))
        case let number as Double: .number(number)
        case let string as String: .string(string)
        case let array as [Any]: .array(array.map(json))
        case let object as [String: Any]: .object(object.mapValues(json))
        default: .null
        }
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
