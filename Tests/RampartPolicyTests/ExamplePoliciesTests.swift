import Foundation
import RampartPolicy
import Testing

/// The worked examples in `policies/` are valid and do what `Docs/POLICY.md` says they do.
@Suite("example policies")
struct ExamplePoliciesTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("policies")

    static let files = [
        "mesh-strict-mtls.yaml", "allow-nothing.yaml", "namespace-isolation.yaml", "ingress-jwt-required.yaml", "deny-admin-paths.yaml", "dry-run.yaml", "federated-trust-domains.yaml",
    ]

    static func engine(_ file: String) -> PolicyEngine {
        PolicyEngine(paths: [folder.appendingPathComponent(file).path])
    }

    @Test("each example analyzes with no error and no warning", arguments: files)
    func analyzesClean(file: String) throws {
        let path = Self.folder.appendingPathComponent(file).path
        #expect(FileManager.default.fileExists(atPath: path))
        let diagnostics = PolicyEngine.analyze(paths: [path])
        #expect(diagnostics.isEmpty, "\(PolicyEngine.renderHuman(diagnostics))")
        #expect(!PolicyLoader.load(paths: [path]).resources.isEmpty)
    }

    @Test("allow-nothing denies what no other policy allows, and the cart rule opens only its paths")
    func allowNothing() {
        let engine = Self.engine("allow-nothing.yaml")
        let frontend = "cluster.local/ns/shop/sa/frontend"
        let other = AuthzRequest(
            transport: .http, source: .init(principal: frontend), destination: .init(namespace: "shop", labels: ["app": "orders"], port: 8080),
            method: "GET", host: "orders", path: "/", headers: [:])
        #expect(engine.snapshot.evaluate(other).decision == .deny)
        let cart = AuthzRequest(
            transport: .http, source: .init(principal: frontend), destination: .init(namespace: "shop", labels: ["app": "cart"], port: 8080),
            method: "POST", host: "cart", path: "/api/cart/items", headers: [:])
        let allowed = engine.snapshot.evaluate(cart)
        #expect(allowed.decision == .allow)
        #expect(allowed.policy == "shop/cart-from-frontend")
        let elsewhere = AuthzRequest(
            transport: .http, source: .init(principal: "cluster.local/ns/shop/sa/batch"),
            destination: .init(namespace: "shop", labels: ["app": "cart"], port: 8080), method: "POST", host: "cart", path: "/api/cart/items", headers: [:])
        #expect(engine.snapshot.evaluate(elsewhere).decision == .deny)
    }

    @Test("deny-admin applies mesh-wide except to the ops namespace")
    func denyAdmin() {
        let engine = Self.engine("deny-admin-paths.yaml")
        func request(_ namespace: String, _ path: String) -> AuthzRequest {
            AuthzRequest(
                transport: .http, source: .init(principal: "cluster.local/ns/\(namespace)/sa/x"),
                destination: .init(namespace: "anywhere", labels: ["app": "api"], port: 8080), method: "GET", host: "api", path: path, headers: [:])
        }
        let denied = engine.snapshot.evaluate(request("shop", "/admin/users"))
        #expect(denied.decision == .deny)
        #expect(denied.status == 403)
        #expect(denied.policy == "istio-system/deny-admin")
        #expect(engine.snapshot.evaluate(request("ops", "/admin/users")).decision == .allow)
        #expect(engine.snapshot.evaluate(request("shop", "/api")).decision == .allow)
    }

    @Test("the dry-run policy reports that it would deny, and does not")
    func dryRun() {
        let engine = Self.engine("dry-run.yaml")
        let delete = AuthzRequest(
            transport: .http, source: .init(principal: "cluster.local/ns/shop/sa/frontend"),
            destination: .init(namespace: "shop", labels: ["app": "cart"], port: 8080), method: "DELETE", host: "cart", path: "/api/cart/1", headers: [:])
        let decision = engine.snapshot.evaluate(delete)
        #expect(decision.decision == .allow)
        #expect(decision.dryRun.contains { $0.policy == "shop/deny-delete-trial" })
    }

    @Test("federated-trust-domains admits the mesh's and the partner's trust domains only, over mTLS")
    func federatedTrustDomains() {
        let engine = Self.engine("federated-trust-domains.yaml")
        func decide(_ principal: String?, path: String = "/v1/orders") -> Decision.Verdict {
            let request = AuthzRequest(
                transport: .http, source: .init(principal: principal),
                destination: .init(namespace: "partners", labels: ["app": "partner-api"], port: 8080),
                method: "GET", host: "partner-api", path: path, headers: [:])
            return engine.snapshot.evaluate(request).decision
        }
        #expect(decide("cluster.local/ns/shop/sa/frontend") == .allow)
        #expect(decide("east.partner.example/ns/billing/sa/sync") == .allow)
        #expect(decide("partner.example.evil/ns/x/sa/y") == .deny)
        #expect(decide("other.example/ns/shop/sa/frontend") == .deny)
        #expect(decide(nil) == .deny)
        #expect(decide("cluster.local/ns/shop/sa/frontend", path: "/admin") == .deny)
    }

    /// The decisions `Docs/POLICY.md` ("Worked examples") gives, against the whole folder.
    @Test(
        "the worked examples decide as Docs/POLICY.md says",
        arguments: [
            // mesh-strict-mtls: plaintext refused before any AuthorizationPolicy.
            ("plaintext to web", nil, "web", ["app": "web"], 8080, "GET", "/", nil, Decision.Verdict.deny, 403, nil),
            ("mTLS to web", "cluster.local/ns/web/sa/a", "web", ["app": "web"], 8080, "GET", "/", nil, .allow, 200, nil),
            // allow-nothing
            ("frontend POST to cart", "cluster.local/ns/shop/sa/frontend", "shop", ["app": "cart"], 8080, "POST", "/api/cart/items", nil, .allow, 200, "shop/cart-from-frontend"),
            ("frontend DELETE to cart", "cluster.local/ns/shop/sa/frontend", "shop", ["app": "cart"], 8080, "DELETE", "/api/cart/items", nil, .deny, 403, nil),
            ("frontend to catalog", "cluster.local/ns/shop/sa/frontend", "shop", ["app": "catalog"], 8080, "GET", "/", nil, .deny, 403, nil),
            // namespace-isolation
            ("ledger to payments", "cluster.local/ns/payments/sa/ledger", "payments", ["app": "api"], 8080, "GET", "/", nil, .allow, 200, "payments/same-namespace-only"),
            ("gateway to payments", "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account", "payments", ["app": "api"], 8080, "GET", "/", nil, .allow, 200, "payments/same-namespace-only"),
            ("cart to payments", "cluster.local/ns/shop/sa/cart", "payments", ["app": "api"], 8080, "GET", "/", nil, .deny, 403, nil),
            // ingress-jwt-required (the gateway accepts plaintext whatever the mesh's mode)
            ("no token", nil, "istio-system", ["istio": "ingressgateway"], 8080, "GET", "/products", nil, .deny, 403, nil),
            ("health check", nil, "istio-system", ["istio": "ingressgateway"], 8080, "GET", "/healthz", nil, .allow, 200, "istio-system/require-jwt"),
            ("valid token", nil, "istio-system", ["istio": "ingressgateway"], 8080, "GET", "/products", "shop.example.com", .allow, 200, "istio-system/require-jwt"),
            ("token for another audience", nil, "istio-system", ["istio": "ingressgateway"], 8080, "GET", "/products", "other", .deny, 403, nil),
            ("token failing verification", nil, "istio-system", ["istio": "ingressgateway"], 8080, "GET", "/products", "", .deny, 401, nil),
            // deny-admin-paths
            ("admin from shop", "cluster.local/ns/shop/sa/a", "web", ["app": "web"], 8080, "GET", "/x/../admin", nil, .deny, 403, "istio-system/deny-admin"),
            ("admin from ops", "cluster.local/ns/ops/sa/a", "web", ["app": "web"], 8080, "GET", "/admin/users", nil, .allow, 200, nil),
            ("admin on another port", "cluster.local/ns/shop/sa/a", "web", ["app": "web"], 9000, "GET", "/admin", nil, .allow, 200, nil),
            // federated-trust-domains
            ("partner caller", "eu.partner.example/ns/x/sa/y", "partners", ["app": "partner-api"], 8080, "POST", "/v1/orders", nil, .allow, 200, "partners/partner-api-callers"),
            ("look-alike caller", "partner.example.evil/ns/x/sa/y", "partners", ["app": "partner-api"], 8080, "GET", "/v1/orders", nil, .deny, 403, nil),
        ] as [(String, String?, String, [String: String], Int, String, String, String?, Decision.Verdict, Int, String?)])
    func documentedDecisions(
        _ case: (String, String?, String, [String: String], Int, String, String, String?, Decision.Verdict, Int, String?)
    ) {
        let (label, principal, namespace, labels, port, method, path, audience, verdict, status, policy) = `case`
        let jwt = audience.map { audience in
            JWTOutcome(
                present: true, valid: !audience.isEmpty,
                claims: .object(["iss": .string("https://accounts.example.com"), "sub": .string("u1"), "aud": .string(audience)]),
                requestPrincipal: "https://accounts.example.com/u1")
        }
        let request = AuthzRequest(
            transport: .http, source: .init(principal: principal),
            destination: .init(namespace: namespace, labels: labels, port: port), method: method, host: "host", path: path,
            headers: [:], jwt: jwt)
        let decision = PolicyEngine(paths: [Self.folder.path]).snapshot.evaluate(request)
        #expect(decision.decision == verdict && decision.status == status, "\(label): \(decision.reason)")
        #expect(decision.policy == policy, "\(label): \(decision.reason)")
    }
}
