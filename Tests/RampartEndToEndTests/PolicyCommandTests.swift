import Foundation
import Glibc
import Testing

/// `rampart analyze` and `rampart authz check` as a user runs them.
@Suite("policy commands")
struct PolicyCommandTests {
    static var policies: String { Paths.packageRoot.appendingPathComponent("policies").path }

    @Test("analyze passes every example in policies/ and exits 0")
    func analyzeExamples() throws {
        let result = try rampart("analyze", Self.policies)
        #expect(result.succeeded, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("0 errors, 0 warnings"))
    }

    @Test("analyze names file:line, resource, field and fix for a broken file, and exits 1")
    func analyzeBroken() throws {
        let dir = try Paths.temporaryDirectory("analyze")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = "\(dir)/broken.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: api, namespace: shop}
            spec:
              action: ALLOW
              rules:
              - to: [{operation: {methods: [GET], pathz: [/a]}}]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let human = try rampart("analyze", file)
        #expect(human.status == 1)
        #expect(human.stdout.contains("\(file):7:"), "\(human.stdout)")
        #expect(human.stdout.contains("AuthorizationPolicy shop/api"))
        #expect(human.stdout.contains("spec.rules[0].to[0].operation.pathz"))
        #expect(human.stdout.contains("fix:"))
        let json = try rampart("analyze", file, "--json")
        #expect(json.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["errors"] as? Int == 1)
        let first = try #require((object["diagnostics"] as? [[String: Any]])?.first)
        #expect(first["line"] as? Int == 7)
        #expect(first["field"] as? String == "spec.rules[0].to[0].operation.pathz")
        #expect((first["code"] as? String)?.hasPrefix("RP") == true)
    }

    @Test("analyze and authz check read - as standard input, as kubectl reads -f -; once only")
    func standardInput() throws {
        let broken = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: api, namespace: shop}
            spec:
              rules: [{to: [{operation: {pathz: [/a]}}]}]
            """
        let analyzed = try run(Paths.rampart, ["analyze", "-", "--json"], input: broken)
        #expect(analyzed.status == 1, "\(analyzed.stdout)\(analyzed.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(analyzed.stdout.utf8)) as? [String: Any])
        let first = try #require((object["diagnostics"] as? [[String: Any]])?.first)
        #expect(first["file"] as? String == "<stdin>" && first["line"] as? Int == 5, "\(first)")
        #expect(analyzed.stderr.isEmpty, "\(analyzed.stderr)")

        let request = "destination: {namespace: payments, labels: {app: ledger}, port: 80}\nsource: {principal: cluster.local/ns/shop/sa/web}\nmethod: GET\npath: /admin/keys\n"
        let checked = try run(Paths.rampart, ["authz", "check", "--policies", Self.policies, "--request", "-", "--json"], input: request)
        #expect(checked.succeeded, "\(checked.stderr)")
        #expect(checked.stdout.contains("istio-system/deny-admin"), "\(checked.stdout)")
        let malformed = try run(Paths.rampart, ["authz", "check", "--policies", Self.policies, "--request", "-"], input: "methdo: GET\n")
        #expect(malformed.status != 0 && malformed.stderr.contains("request <stdin>:1: methdo"), "\(malformed.stderr)")
        let both = try run(Paths.rampart, ["authz", "check", "--policies", "-", "--request", "-"], input: request)
        #expect(both.status == 64 && both.stderr.contains("standard input can be read once"), "\(both.stderr)")
    }

    @Test("authz check prints the decision as JSON, names the deciding policy and rule, and exits 0 on deny")
    func checkDecision() throws {
        let dir = try Paths.temporaryDirectory("authz")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let request = "\(dir)/request.json"
        try """
            {"protocol": "HTTP", "source": {"principal": "cluster.local/ns/shop/sa/web"},
             "destination": {"namespace": "payments", "labels": {"app": "ledger"}, "port": 80},
             "method": "GET", "host": "ledger", "path": "/admin/../admin/keys?x=1"}
            """.write(toFile: request, atomically: true, encoding: .utf8)
        let result = try rampart("authz", "check", "--policies", Self.policies, "--request", request, "--json", "--explain")
        #expect(result.succeeded, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["decision"] as? String == "deny")
        #expect(object["status"] as? Int == 403)
        #expect(object["policy"] as? String == "istio-system/deny-admin")
        #expect(object["rule"] as? Int == 0)
        #expect(object["mtls_mode"] as? String == "STRICT")
        #expect((object["reason"] as? String)?.isEmpty == false)
        let steps = try #require(object["explain"] as? [[String: Any]])
        #expect(steps.contains { $0["policy"] as? String == "istio-system/deny-admin" })
        #expect(object["mtls_policy"] as? String == "payments/default", "\(object)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")

        // A principal over plaintext, and a request without the port a portLevelMtls names: said on stderr.
        let plaintext = "\(dir)/plaintext.yaml"
        try """
            source: {principal: cluster.local/ns/shop/sa/web, mtls: false}
            destination: {namespace: payments, labels: {app: ledger}, port: 80}
            method: GET
            path: /
            """.write(toFile: plaintext, atomically: true, encoding: .utf8)
        let refused = try rampart("authz", "check", "--policies", Self.policies, "--request", plaintext)
        #expect(refused.succeeded, "\(refused.stderr)")
        #expect(refused.stderr.contains("source.principal is ignored because source.mtls is false"), "\(refused.stderr)")
        #expect(refused.stdout.contains("(set by PeerAuthentication payments/default)"), "\(refused.stdout)")
        #expect(refused.stdout.contains("plaintext connection to port 80"), "\(refused.stdout)")
    }

    @Test("authz check fetches keys only when the request has a token: a key server that never answers holds up no other request")
    func probesOnlyWithToken() throws {
        let dir = try Paths.temporaryDirectory("authz-probe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let listener = try SilentListener()
        defer { listener.close() }
        let policy = "\(dir)/policy.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              jwtRules:
              - {issuer: issuer-1, jwksUri: "http://127.0.0.1:\(listener.port)/jwks.json", timeout: 1s}
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        func check(_ extra: String) throws -> Int? {
            let request = "destination: {namespace: shop, labels: {app: cart}, port: 8080}\nmethod: GET\npath: /\n\(extra)"
            return try authzCheckJSON(policies: policy, request: request, in: dir)["status"] as? Int
        }
        #expect(try check("headers: {x-other: value}") == 200)
        #expect(listener.connections() == 0, "no token, so the keys were not fetched")
        #expect(try check("jwt: {present: true, valid: true, claims: {iss: issuer-1, sub: alice}}") == 401)
        #expect(listener.connections() >= 1, "a token, so the keys were fetched (and never came)")
    }

    @Test("authz check gets each JWKS as a proxy would: a valid token is refused (401) when its issuer's keys cannot be had")
    func checkFetchesKeys() throws {
        let dir = try Paths.temporaryDirectory("authz-jwks")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let request = """
            protocol: HTTP
            source: {principal: cluster.local/ns/shop/sa/web, namespace: shop}
            destination: {namespace: shop, labels: {app: cart}, port: 8080}
            method: GET
            host: cart
            path: /
            jwt: {present: true, valid: true, claims: {iss: issuer-1, sub: alice}, request_principal: issuer-1/alice}
            """
        func decision(jwksURI: String, timeout: String? = nil) throws -> (String?, Int?) {
            let policy = "\(dir)/policy.yaml"
            try """
                apiVersion: security.istio.io/v1
                kind: RequestAuthentication
                metadata: {name: jwt, namespace: shop}
                spec:
                  selector: {matchLabels: {app: cart}}
                  jwtRules:
                  - issuer: issuer-1
                    jwksUri: "\(jwksURI)"
                \(timeout.map { "    timeout: \($0)" } ?? "")
                """.write(toFile: policy, atomically: true, encoding: .utf8)
            let object = try authzCheckJSON(policies: policy, request: request, in: dir)
            return (object["decision"] as? String, object["status"] as? Int)
        }
        // Nothing listens on port 1 of loopback: the keys never arrive.
        #expect(try decision(jwksURI: "http://127.0.0.1:1/jwks.json", timeout: "1s") == ("deny", 401))
        // The corpus's test JWT server, answering after its delay: too late for 10 ms, in time for 2 s.
        #expect(try decision(jwksURI: "<JWKS server>?delay=500ms", timeout: "10ms") == ("deny", 401))
        #expect(try decision(jwksURI: "<JWKS server>?delay=500ms", timeout: "2s") == ("allow", 200))
        // Istio's published sample JWKS, answered from its public key without a network.
        #expect(try decision(jwksURI: "https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json") == ("allow", 200))
    }

    @Test("authz check refuses policies that define one resource twice, naming both places")
    func duplicateDefinitions() throws {
        let dir = try Paths.temporaryDirectory("authz-dup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let policy = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec: {action: %@}\n"
        try String(format: policy, "DENY").write(toFile: "\(dir)/a.yaml", atomically: true, encoding: .utf8)
        try String(format: policy, "ALLOW").write(toFile: "\(dir)/b.yaml", atomically: true, encoding: .utf8)
        try "destination: {namespace: shop}\nmethod: GET\npath: /\n".write(toFile: "\(dir)/request.yaml", atomically: true, encoding: .utf8)
        let result = try rampart("authz", "check", "--policies", "\(dir)/a.yaml", "\(dir)/b.yaml", "--request", "\(dir)/request.yaml")
        #expect(result.status == 64, "\(result.stdout)")
        #expect(result.stderr.contains("b.yaml:3: error RP065") && result.stderr.contains("first at \(dir)/a.yaml:1"), "\(result.stderr)")
    }

    @Test("authz check warns of a token no rule checks, a jwt block beside a header token, and a policy in a namespace one letter off")
    func requestWarnings() throws {
        let dir = try Paths.temporaryDirectory("authz-warn")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: allow-frontend, namespace: shpo}
            spec: {rules: [{}]}
            """.write(toFile: "\(dir)/p.yaml", atomically: true, encoding: .utf8)
        try "destination: {namespace: shop, labels: {version: v1, app: cart}}\nmethod: GET\npath: /\nheaders: {authorization: Bearer abc}\n"
            .write(toFile: "\(dir)/token.yaml", atomically: true, encoding: .utf8)
        let token = try rampart("authz", "check", "--policies", "\(dir)/p.yaml", "--request", "\(dir)/token.yaml")
        #expect(token.succeeded, "\(token.stderr)")
        #expect(token.stderr.contains("no RequestAuthentication applies to shop {app: cart, version: v1}"), "\(token.stderr)")
        #expect(token.stderr.contains("AuthorizationPolicy shpo/allow-frontend is in namespace shpo, not shop"), "\(token.stderr)")
        // Two namespace-wide PeerAuthentications: which one applies depends on creation times.
        try """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: z-strict, namespace: shop}
            spec: {mtls: {mode: STRICT}}
            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: a-permissive, namespace: shop}
            spec: {mtls: {mode: PERMISSIVE}}
            """.write(toFile: "\(dir)/pa.yaml", atomically: true, encoding: .utf8)
        let competing = try rampart("authz", "check", "--policies", "\(dir)/pa.yaml", "--request", "\(dir)/token.yaml", "--json")
        #expect(competing.succeeded && competing.stdout.contains("\"mtls_policy\" : \"shop/a-permissive\""), "\(competing.stdout)")
        #expect(
            competing.stderr.contains("PeerAuthentications compete where this request's mTLS mode is decided")
                && competing.stderr.contains("pa.yaml:3: warning RP063"), "\(competing.stderr)")
        // A RequestAuthentication with no jwtRules applies, and checks no token.
        try """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: none, namespace: shop}
            spec: {jwtRules: []}
            """.write(toFile: "\(dir)/ra.yaml", atomically: true, encoding: .utf8)
        let noRules = try rampart(
            "authz", "check", "--policies", "\(dir)/p.yaml", "--policies", "\(dir)/ra.yaml", "--request", "\(dir)/token.yaml")
        #expect(
            noRules.stderr.contains("the RequestAuthentication applying to shop {app: cart, version: v1} has no jwtRules: the token is not checked"),
            "\(noRules.stderr)")
        try "destination: {namespace: shop}\nmethod: GET\npath: /\nheaders: {authorization: Bearer abc}\njwt: {present: false}\n"
            .write(toFile: "\(dir)/both.yaml", atomically: true, encoding: .utf8)
        let both = try rampart("authz", "check", "--policies", "\(dir)/p.yaml", "--request", "\(dir)/both.yaml")
        #expect(both.stderr.contains("the jwt: block is used, and the token is not checked"), "\(both.stderr)")
        // A token the rule does not read: the prefix in another case, or a cookie no rule lists.
        try """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              jwtRules: [{issuer: "https://idp.example", jwks: '{"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}'}]
            """.write(toFile: "\(dir)/ra.yaml", atomically: true, encoding: .utf8)
        try "destination: {namespace: shop}\nmethod: GET\npath: /\nheaders: {authorization: bearer eyJabc, cookie: session=eyJdef}\n"
            .write(toFile: "\(dir)/lower.yaml", atomically: true, encoding: .utf8)
        let lower = try rampart("authz", "check", "--policies", "\(dir)/ra.yaml", "--request", "\(dir)/lower.yaml")
        #expect(lower.succeeded, "\(lower.stderr)")
        #expect(lower.stderr.contains("header authorization starts with \"bearer \", but jwtRules[0] of shop/jwt reads the prefix \"Bearer \""), "\(lower.stderr)")
        #expect(lower.stderr.contains("no jwtRule for this workload lists fromCookies"), "\(lower.stderr)")
        try "# no request here\n".write(toFile: "\(dir)/empty.yaml", atomically: true, encoding: .utf8)
        let empty = try rampart("authz", "check", "--policies", "\(dir)/p.yaml", "--request", "\(dir)/empty.yaml")
        #expect(empty.status == 64 && empty.stderr.contains("the request is empty"), "\(empty.stderr)")
    }

    @Test("authz check refuses a malformed request with the field at fault and a non-zero exit")
    func checkBadRequest() throws {
        let dir = try Paths.temporaryDirectory("authz-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let request = "\(dir)/request.yaml"
        try "protocol: HTTP\ndestination: {namespace: shop, port: eighty}\n".write(toFile: request, atomically: true, encoding: .utf8)
        let result = try rampart("authz", "check", "--policies", Self.policies, "--request", request)
        #expect(!result.succeeded)
        #expect(result.stderr.contains("destination.port"), "\(result.stderr)")
        let missing = try rampart("authz", "check", "--policies", "\(dir)/nope.yaml", "--request", request)
        #expect(!missing.succeeded)
        #expect(missing.stderr.contains("nope.yaml"), "\(missing.stderr)")
    }
}

/// A loopback TCP listener that never answers; it counts the connections made to it.
final class SilentListener {
    private let socket: Int32
    let port: Int

    init() throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw CocoaError(.fileWriteUnknown)
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        socket = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Accepts (and closes) every connection waiting, and returns how many there were.
    func connections() -> Int {
        var count = 0
        while case let connection = accept(socket, nil, nil), connection >= 0 {
            count += 1
            Glibc.close(connection)
        }
        return count
    }

    func close() { Glibc.close(socket) }
}
