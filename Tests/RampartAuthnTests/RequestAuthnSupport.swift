import Foundation
import JWTKit
import RampartAuthn
import RampartPolicy
import Synchronization
import Testing

/// Virtual time for request authentication: tests move it by hand.
final class ManualClock: AuthnClock {
    private let current: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_750_000_000)) {
        current = Mutex(start)
    }

    var now: Date { current.withLock { $0 } }

    func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}

/// An HTTP fetcher that answers from a script and counts the requests it gets.
final class ScriptedFetcher: HTTPFetcher {
    private let state = Mutex<(answers: [String: Result<String, AuthnError>], calls: [String])>(([:], []))

    /// Makes `url` answer `body`.
    func serve(_ url: String, _ body: String) {
        state.withLock { $0.answers[url] = .success(body) }
    }

    /// Makes `url` fail.
    func fail(_ url: String) {
        state.withLock { $0.answers[url] = .failure(AuthnError(.keySourceUnavailable, "\(url) answered HTTP 503, expected 200")) }
    }

    /// How many times `url` was fetched.
    func calls(_ url: String) -> Int {
        state.withLock { $0.calls.filter { $0 == url }.count }
    }

    func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        let answer = state.withLock { state -> Result<String, AuthnError>? in
            state.calls.append(url)
            return state.answers[url]
        }
        switch answer {
        case .success(let body)?: return body
        case .failure(let error)?: throw error
        case nil: throw AuthnError(.keySourceUnavailable, "\(url) answered HTTP 404, expected 200")
        }
    }
}

/// A payload of any claims, nested ones included.
struct AnyClaims: JWTPayload {
    var members: [String: JSONValue]

    init(_ members: [String: JSONValue]) { self.members = members }

    init(from decoder: any Decoder) throws {
        members = try decoder.singleValueContainer().decode([String: JSONValue].self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(members)
    }

    func verify(using algorithm: some JWTAlgorithm) throws {}
}

let requestIssuer = "https://accounts.example.com"

/// Claims a rule with issuer `requestIssuer` and audience `shop` accepts at `now`.
func requestClaims(now: Date, issuer: String = requestIssuer, audience: JSONValue = .string("shop"), extra: [String: JSONValue] = [:]) -> AnyClaims {
    var members: [String: JSONValue] = [
        "iss": .string(issuer), "sub": .string("alice"), "aud": audience,
        "exp": .number(now.timeIntervalSince1970 + 600), "iat": .number(now.timeIntervalSince1970 - 10),
    ]
    members.merge(extra) { _, new in new }
    return AnyClaims(members)
}

extension IssuerKey {
    /// Signs any claims with ES256, naming `headerKid` (this key's kid by default).
    func sign(any claims: AnyClaims, headerKid: String? = nil) async throws -> String {
        let keys = JWTKeyCollection()
        let kid = JWKIdentifier(string: headerKid ?? self.kid)
        await keys.add(ecdsa: try ES256PrivateKey(backing: privateKey), kid: kid)
        return try await keys.sign(claims, kid: kid)
    }
}

extension RSAIssuerKey {
    /// Signs any claims with RS256, or PS256 when `pss` is set.
    func sign(any claims: AnyClaims, pss: Bool) async throws -> String {
        let keys = JWTKeyCollection()
        if pss {
            await keys.add(pss: privateKey, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        } else {
            await keys.add(rsa: privateKey, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        }
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }
}

/// A JWKS document holding `keys`.
func jwksJSON(_ keys: [[String: String]]) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: ["keys": keys], options: [.sortedKeys]), as: UTF8.self)
}

/// The JWT providers of workload shop/cart under a RequestAuthentication with `rules` (YAML flow list items);
/// the resource must pass validation unless `validated` is false.
func providers(rules: [String], validated: Bool = true) throws -> [JWTProvider] {
    let yaml = """
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: shop}
        spec:
          selector: {matchLabels: {app: cart}}
          jwtRules:
        \(rules.map { "  - \($0)" }.joined(separator: "\n"))
        """
    let engine = PolicyEngine(yaml: yaml, file: "test.yaml")
    let errors = engine.diagnostics.filter { $0.severity == .error }
    try #require(!validated || errors.isEmpty, "\(errors)")
    return engine.snapshot.jwtProviders(namespace: "shop", labels: ["app": "cart"])
}

/// A rule for `requestIssuer` with an inline JWKS, audience `shop`, and `more` YAML fields.
func inlineRule(_ jwks: String, issuer: String = requestIssuer, more: String = "") -> String {
    let quoted = jwks.replacingOccurrences(of: "'", with: "''")
    return "{issuer: '\(issuer)', audiences: [shop], jwks: '\(quoted)'\(more.isEmpty ? "" : ", " + more)}"
}

/// An HTTP request to shop/cart.
func cartRequest(path: String = "/items", headers: [String: String] = [:], method: String = "GET") -> AuthzRequest {
    AuthzRequest(destination: .init(namespace: "shop", labels: ["app": "cart"], port: 8080), method: method, host: "cart", path: path, headers: headers)
}
