import Crypto
import Foundation
import Testing

/// `rampart authz check` with a real signed token in the request, verified with the
/// RequestAuthentication's inline JWKS.
@Suite("authz check with real tokens")
struct AuthzRealTokenTests {
    static let issuer = "https://accounts.example.com"

    /// An ES256 test issuer: its JWKS and compact JWS tokens, made with swift-crypto.
    struct Issuer {
        let key = P256.Signing.PrivateKey()
        let kid = "e2e-1"

        var jwks: String {
            let point = Array(key.publicKey.x963Representation)
            return #"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"\#(kid)","x":"\#(base64URL(point[1...32]))","y":"\#(base64URL(point[33...64]))"}]}"#
        }

        func token(_ claims: [String: Any]) throws -> String {
            let header = base64URL(try JSONSerialization.data(withJSONObject: ["alg": "ES256", "typ": "JWT", "kid": kid], options: [.sortedKeys]))
            let payload = base64URL(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
            let signature = try key.signature(for: Data("\(header).\(payload)".utf8)).rawRepresentation
            return "\(header).\(payload).\(base64URL(signature))"
        }
    }

    static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A policy folder: a RequestAuthentication with `issuer`'s inline JWKS, and an ALLOW policy for alice's token.
    static func policies(_ issuer: Issuer, in dir: String) throws -> String {
        let file = "\(dir)/policies.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              selector: {matchLabels: {app: cart}}
              jwtRules:
              - issuer: \(Self.issuer)
                audiences: [shop]
                jwks: '\(issuer.jwks)'
                outputClaimToHeaders: [{header: x-user, claim: sub}]
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: alice-only, namespace: shop}
            spec:
              selector: {matchLabels: {app: cart}}
              rules:
              - from: [{source: {requestPrincipals: ["\(Self.issuer)/alice"]}}]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    static func claims(exp: TimeInterval = 600, sub: String = "alice") -> [String: Any] {
        let now = Int(Date().timeIntervalSince1970)
        return ["iss": issuer, "sub": sub, "aud": "shop", "iat": now, "exp": now + Int(exp)]
    }

    static func request(headers: String = "{}", path: String = "/items") -> String {
        """
        protocol: HTTP
        source: {principal: cluster.local/ns/shop/sa/web}
        destination: {namespace: shop, labels: {app: cart}, port: 8080}
        method: GET
        host: cart
        path: "\(path)"
        headers: \(headers)
        """
    }

    @Test("a good token in the Authorization header is verified and allowed by its request principal")
    func goodToken() throws {
        let dir = try Paths.temporaryDirectory("authz-jwt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let issuer = Issuer()
        let policies = try Self.policies(issuer, in: dir)
        let token = try issuer.token(Self.claims())
        let object = try authzCheckJSON(policies: policies, request: Self.request(headers: "{authorization: \"Bearer \(token)\"}"), in: dir)
        #expect(object["decision"] as? String == "allow", "\(object)")
        #expect(object["status"] as? Int == 200)
        #expect(object["policy"] as? String == "shop/alice-only")
        let edits = try #require(object["header_edits"] as? [[String: Any]])
        #expect(edits.contains { $0["op"] as? String == "remove" && $0["header"] as? String == "authorization" })
        #expect(edits.contains { $0["header"] as? String == "x-user" && $0["value"] as? String == "alice" })

        // The same token as ?access_token= in the path.
        let query = try authzCheckJSON(policies: policies, request: Self.request(path: "/items?access_token=\(token)"), in: dir)
        #expect(query["decision"] as? String == "allow", "\(query)")
        // Not forwarded: the parameter is taken out of the path the application gets.
        let queryEdits = try #require(query["header_edits"] as? [[String: Any]])
        #expect(queryEdits.contains { $0["op"] as? String == "remove" && $0["query_parameter"] as? String == "access_token" }, "\(queryEdits)")

        // Authorization sent twice, as a list in the request file: each value is a token, and
        // each must verify; text after the token in one value makes it a token that does not parse.
        let forged = try Issuer().token(Self.claims())
        let twice = try authzCheckJSON(
            policies: policies, request: Self.request(headers: "{authorization: [\"Bearer \(token)\", \"Bearer \(forged)\"]}"), in: dir)
        #expect(twice["status"] as? Int == 401, "\(twice)")
        let trailing = try authzCheckJSON(
            policies: policies, request: Self.request(headers: "{authorization: \"Bearer \(token), other\"}"), in: dir)
        #expect(trailing["status"] as? Int == 401, "\(trailing)")
    }

    @Test("a rule that reads only a query parameter still takes its token out of the forwarded path")
    func parameterOnlyRule() throws {
        let dir = try Paths.temporaryDirectory("authz-jwt-param")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let issuer = Issuer()
        let file = "\(dir)/policies.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              jwtRules:
              - issuer: \(Self.issuer)
                jwks: '\(issuer.jwks)'
                fromParams: [token]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let token = try issuer.token(Self.claims())
        let object = try authzCheckJSON(policies: file, request: Self.request(path: "/items?token=\(token)&page=2"), in: dir)
        #expect(object["decision"] as? String == "allow", "\(object)")
        let edits = try #require(object["header_edits"] as? [[String: Any]], "\(object)")
        #expect(edits.contains { $0["op"] as? String == "remove" && $0["query_parameter"] as? String == "token" }, "\(edits)")
        // An empty parameter is a token that does not parse.
        let empty = try authzCheckJSON(policies: file, request: Self.request(path: "/items?token="), in: dir)
        #expect(empty["status"] as? Int == 401, "\(empty)")
    }

    @Test("a bad token is refused with 401 and a reason saying what was wrong")
    func badToken() throws {
        let dir = try Paths.temporaryDirectory("authz-jwt-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let issuer = Issuer()
        let policies = try Self.policies(issuer, in: dir)
        let forged = try Issuer().token(Self.claims())
        let refused = try authzCheckJSON(policies: policies, request: Self.request(headers: "{authorization: \"Bearer \(forged)\"}"), in: dir)
        #expect(refused["decision"] as? String == "deny")
        #expect(refused["status"] as? Int == 401)
        #expect((refused["reason"] as? String)?.contains("signature") == true, "\(refused)")
        #expect(refused["header_edits"] == nil)

        let expired = try issuer.token(Self.claims(exp: -3600))
        let late = try authzCheckJSON(policies: policies, request: Self.request(headers: "{authorization: \"Bearer \(expired)\"}"), in: dir)
        #expect(late["status"] as? Int == 401)
        #expect((late["reason"] as? String)?.contains("expired at") == true, "\(late)")

        // A token of bob verifies but is not allowed: 403 from the ALLOW policy, not 401.
        let bob = try issuer.token(Self.claims(sub: "bob"))
        let denied = try authzCheckJSON(policies: policies, request: Self.request(headers: "{authorization: \"Bearer \(bob)\"}"), in: dir)
        #expect(denied["status"] as? Int == 403)
    }

    @Test("a key source that cannot be reached is reported with the real reason; a malformed token without library internals")
    func unreachableKeys() throws {
        let dir = try Paths.temporaryDirectory("authz-jwt-down")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let issuer = Issuer()
        // Nothing listens on port 1 of the loopback address: the connection is refused.
        let file = "\(dir)/down.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              jwtRules:
              - issuer: \(Self.issuer)
                jwksUri: http://127.0.0.1:1/jwks.json
                timeout: 1s
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let token = try issuer.token(Self.claims())
        let refused = try authzCheckJSON(policies: file, request: Self.request(headers: "{authorization: \"Bearer \(token)\"}"), in: dir)
        #expect(refused["status"] as? Int == 401)
        let reason = try #require(refused["reason"] as? String)
        #expect(reason.contains("http://127.0.0.1:1/jwks.json") && !reason.contains("stated unreachable"), "\(reason)")

        let policies = try Self.policies(issuer, in: dir)
        let garbage = try authzCheckJSON(policies: policies, request: Self.request(headers: "{authorization: \"Bearer a.b\"}"), in: dir)
        #expect(garbage["status"] as? Int == 401)
        let text = try #require(garbage["reason"] as? String)
        #expect(text.contains("is not a JWT") && !text.contains("JWTKitError") && !text.contains("Optional("), "\(text)")
    }

    @Test("a --jwks-env file that does not say what the schema says is refused")
    func malformedEnvironment() throws {
        let dir = try Paths.temporaryDirectory("authz-jwt-env")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let policies = try Self.policies(Issuer(), in: dir)
        let request = "\(dir)/request.yaml"
        try Self.request().write(toFile: request, atomically: true, encoding: .utf8)
        let environment = "\(dir)/env.yaml"
        try "unreachabel: [http://127.0.0.1:1/jwks.json]\n".write(toFile: environment, atomically: true, encoding: .utf8)
        let result = try rampart("authz", "check", "--policies", policies, "--request", request, "--jwks-env", environment)
        #expect(!result.succeeded)
        #expect(result.stderr.contains("--jwks-env") && result.stderr.contains("unreachabel"), "\(result.stderr)")
    }

    @Test("an abstract jwt block keeps precedence over a token in the headers")
    func abstractBlockWins() throws {
        let dir = try Paths.temporaryDirectory("authz-jwt-abstract")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let issuer = Issuer()
        let policies = try Self.policies(issuer, in: dir)
        let request = Self.request(headers: "{authorization: \"Bearer not-a-token\"}") + """

            jwt: {present: true, valid: true, claims: {iss: \(Self.issuer), sub: alice, aud: shop}}
            """
        let object = try authzCheckJSON(policies: policies, request: request, in: dir)
        #expect(object["decision"] as? String == "allow", "\(object)")
    }
}
