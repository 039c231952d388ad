import Foundation
import Testing

@testable import RampartPolicy

/// Policies Istio admits that do not do what they seem to: each gets its own warning, and the
/// sound variant of each gets none. Sources: Istio's security advisory ISTIO-SECURITY-2021-004
/// (mTLS-only fields without STRICT), istio/api's AuthorizationPolicy reference (targetRefs,
/// request principals), istio/istio pkg/config/validation (a nil rule).
@Suite("Analyzer: policies that cannot work as written")
struct PitfallWarningTests {
    static func policy(_ name: String, action: String, rules: String, extra: String = "") -> String {
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: \(name), namespace: foo}\nspec:\n  action: \(action)\n\(extra)  rules:\n\(rules)\n"
    }

    static let strict = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: foo}\nspec: {mtls: {mode: STRICT}}\n"
    static let disabled = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: foo}\nspec: {mtls: {mode: DISABLE}}\n"
    static let requestAuthentication = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: foo}\nspec:\n  jwtRules: [{issuer: 'https://idp.example', jwksUri: 'https://idp.example/keys'}]\n"

    func codes(_ documents: String...) -> [DiagnosticCode] {
        PolicyAnalyzer.analyze(PolicyLoader.load(yaml: documents.joined(separator: "---\n"), file: "p.yaml").resources).map(\.code)
    }

    @Test("a policy without a selector covers the workloads other PeerAuthentications select: their plaintext ports and modes count")
    func identityWithoutStrictOnSelectedWorkloads() {
        let deny = Self.policy("deny-bad", action: "DENY", rules: "  - from: [{source: {principals: [cluster.local/ns/x/sa/bad]}}]")
        func peer(_ namespace: String, _ spec: String) -> String {
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: cart, namespace: \(namespace)}\nspec:\n  selector: {matchLabels: {app: cart}}\n\(spec)\n"
        }
        let plaintextPort = peer("foo", "  mtls: {mode: STRICT}\n  portLevelMtls: {'8080': {mode: PERMISSIVE}}")
        #expect(codes(deny, Self.strict, plaintextPort).contains(.identityWithoutStrict))
        #expect(codes(deny, Self.strict, peer("foo", "  mtls: {mode: DISABLE}")).contains(.identityWithoutStrict))
        // Another namespace's workloads are not this policy's; a STRICT one changes nothing.
        #expect(!codes(deny, Self.strict, peer("bar", "  mtls: {mode: DISABLE}")).contains(.identityWithoutStrict))
        #expect(!codes(deny, Self.strict, peer("foo", "  mtls: {mode: STRICT}")).contains(.identityWithoutStrict))
        // A policy whose selector another PeerAuthentication's labels contradict does not cover its workloads.
        let selected = Self.policy(
            "deny-bad", action: "DENY", rules: "  - from: [{source: {principals: [cluster.local/ns/x/sa/bad]}}]",
            extra: "  selector: {matchLabels: {app: web}}\n")
        #expect(!codes(selected, Self.strict, plaintextPort).contains(.identityWithoutStrict))
        // In the root namespace, a policy covers every namespace's workloads.
        let mesh = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-bad, namespace: istio-system}\nspec:\n  action: DENY\n  rules: [{from: [{source: {principals: [cluster.local/ns/x/sa/bad]}}]}]\n"
        let meshStrict = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n"
        #expect(!codes(mesh, meshStrict).contains(.identityWithoutStrict))
        #expect(codes(mesh, meshStrict, peer("bar", "  mtls: {mode: PERMISSIVE}")).contains(.identityWithoutStrict))
    }

    @Test("mTLS-only fields where plaintext is accepted: a DENY on principals, an ALLOW with notNamespaces, an ALLOW under DISABLE")
    func identityWithoutStrict() {
        let deny = Self.policy("deny-bad", action: "DENY", rules: "  - from: [{source: {principals: [cluster.local/ns/x/sa/bad]}}]")
        let allowNot = Self.policy("allow-not", action: "ALLOW", rules: "  - from: [{source: {notNamespaces: [foo]}}]")
        let allow = Self.policy("allow", action: "ALLOW", rules: "  - from: [{source: {namespaces: [bar]}}]")
        #expect(codes(deny).contains(.identityWithoutStrict))
        #expect(codes(allowNot).contains(.identityWithoutStrict))
        #expect(!codes(allow).contains(.identityWithoutStrict))
        #expect(codes(allow, Self.disabled).contains(.identityWithoutStrict))
        for sound in [deny, allowNot, allow] { #expect(!codes(sound, Self.strict).contains(.identityWithoutStrict)) }
    }

    @Test("the other identity fields and conditions, and ports portLevelMtls leaves open to plaintext, are warned too")
    func identityConditionsAndPorts() {
        let accounts = Self.policy("deny-sa", action: "DENY", rules: "  - from: [{source: {serviceAccounts: [bar/attacker]}}]")
        let domains = Self.policy("deny-td", action: "DENY", rules: "  - from: [{source: {trustDomains: [evil.example]}}]")
        let denyWhen = Self.policy("deny-ns", action: "DENY", rules: "  - when: [{key: source.namespace, values: [untrusted]}]")
        let allowNotWhen = Self.policy("allow-np", action: "ALLOW", rules: "  - when: [{key: source.principal, notValues: [cluster.local/ns/x/sa/bad]}]")
        for warned in [accounts, domains, denyWhen, allowNotWhen] {
            #expect(codes(warned).contains(.identityWithoutStrict), "\(warned)")
            #expect(!codes(warned, Self.strict).contains(.identityWithoutStrict), "\(warned)")
        }
        // A DENY on a condition's notValues, or an ALLOW on its values, fails closed for plaintext: not warned.
        let allowWhen = Self.policy("allow-ns", action: "ALLOW", rules: "  - when: [{key: source.namespace, values: [foo]}]")
        #expect(!codes(allowWhen).contains(.identityWithoutStrict))
        // STRICT for the namespace, but port 8080 left PERMISSIVE for the workload.
        let ported = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: web, namespace: foo}\nspec:\n  selector: {matchLabels: {app: web}}\n  portLevelMtls: {8080: {mode: PERMISSIVE}}\n"
        let onWeb = Self.policy("deny-web", action: "DENY", rules: "  - from: [{source: {namespaces: [bad]}}]", extra: "  selector: {matchLabels: {app: web}}\n")
        let found = PolicyAnalyzer.analyze(PolicyLoader.load(yaml: [onWeb, Self.strict, ported].joined(separator: "---\n"), file: "p.yaml").resources)
        #expect(found.contains { $0.code == .identityWithoutStrict && $0.message.contains("port 8080 (PERMISSIVE)") }, "\(found)")
    }

    @Test("no identity warning where a DENY policy for the same workloads refuses requests without a peer identity, as the advisory advises")
    func advisoryFixFollowed() {
        let deny = Self.policy("deny-bad", action: "DENY", rules: "  - from: [{source: {namespaces: [bad]}}]", extra: "  selector: {matchLabels: {app: web}}\n")
        let refuse = Self.policy("deny-plaintext", action: "DENY", rules: "  - from: [{source: {notPrincipals: [\"*\"]}}]")
        #expect(codes(deny).contains(.identityWithoutStrict))
        #expect(!codes(deny, refuse).contains(.identityWithoutStrict))
        // One limited to other paths, for other workloads, or in dry run does not refuse them all.
        let partial = Self.policy("deny-plaintext", action: "DENY", rules: "  - from: [{source: {notPrincipals: [\"*\"]}}]\n    to: [{operation: {paths: [/admin]}}]")
        let elsewhere = Self.policy("deny-plaintext", action: "DENY", rules: "  - from: [{source: {notPrincipals: [\"*\"]}}]", extra: "  selector: {matchLabels: {app: db}}\n")
        let dryRun = refuse.replacingOccurrences(of: "namespace: foo}", with: "namespace: foo, annotations: {istio.io/dry-run: \"true\"}}")
        for weaker in [partial, elsewhere, dryRun] { #expect(codes(deny, weaker).contains(.identityWithoutStrict), "\(weaker)") }
    }

    @Test("request principals or JWT claims where no RequestAuthentication applies")
    func noRequestAuthentication() {
        let principals = Self.policy("jwt", action: "ALLOW", rules: "  - from: [{source: {requestPrincipals: [\"*\"]}}]")
        let claims = Self.policy("claims", action: "ALLOW", rules: "  - when: [{key: \"request.auth.claims[groups]\", values: [admin]}]")
        #expect(codes(principals).contains(.noRequestAuthentication))
        #expect(codes(claims).contains(.noRequestAuthentication))
        #expect(!codes(principals, Self.requestAuthentication).contains(.noRequestAuthentication))
    }

    @Test("a PeerAuthentication with a selector in the root namespace is ignored by Istio: RP071")
    func rootPeerSelector() {
        let rooted = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: web, namespace: istio-system}\nspec:\n  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n"
        let diagnostics = PolicyAnalyzer.analyze(PolicyLoader.load(yaml: rooted, file: "p.yaml").resources)
        let finding = diagnostics.first { $0.code == .rootPeerSelector }
        #expect(finding?.severity == .warning && finding?.field == "spec.selector" && finding?.line == 5, "\(diagnostics)")
        #expect(!codes(Self.strict).contains(.rootPeerSelector))
        let meshWide = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n"
        #expect(!codes(meshWide).contains(.rootPeerSelector))
        let other = PolicyAnalyzer.analyze(PolicyLoader.load(yaml: rooted, file: "p.yaml").resources, rootNamespace: "mesh-root")
        #expect(!other.contains { $0.code == .rootPeerSelector })
    }

    @Test("values that cannot match as meant: principals without a trust domain, request principals without an issuer, paths with a query")
    func valuesWithoutTheirParts() {
        func found(_ rules: String, action: String = "ALLOW", _ others: String...) -> [Diagnostic] {
            let yaml = ([Self.policy("p", action: action, rules: rules)] + others).joined(separator: "---\n")
            return PolicyAnalyzer.analyze(PolicyLoader.load(yaml: yaml, file: "p.yaml").resources)
                .filter { $0.code == .neverMatches }
        }
        #expect(found("  - from: [{source: {principals: [sleep, ns/foo/sa/sleep]}}]", Self.strict).count == 2)
        #expect(found("  - from: [{source: {principals: [cluster.local/ns/foo/sa/sleep, \"*\", \"*/sa/sleep\"]}}]", Self.strict).isEmpty)
        #expect(found("  - from: [{source: {requestPrincipals: [alice]}}]", Self.requestAuthentication).count == 1)
        #expect(found("  - from: [{source: {requestPrincipals: [\"https://idp.example/alice\", \"*\"]}}]", Self.requestAuthentication).isEmpty)
        let query = found("  - to: [{operation: {paths: [\"/api?debug=true\"], notPaths: [\"/x?y\"]}}]")
        #expect(query.count == 2 && query.contains { $0.message.contains("excludes nothing") }, "\(query)")
        // An ALLOW on "no peer identity" under STRICT everywhere is allow-nothing in disguise.
        let anonymous = "  - from: [{source: {notPrincipals: [\"*\"]}}]"
        #expect(found(anonymous, Self.strict).count == 1)
        #expect(found(anonymous).isEmpty)
    }

    @Test("notRequestPrincipals with no RequestAuthentication holds for every request; a RequestAuthentication no policy backs lets tokenless requests in")
    func tokensNotRequired() {
        let deny = Self.policy("p", action: "DENY", rules: "  - from: [{source: {notRequestPrincipals: [\"*\"]}}]")
        #expect(codes(deny).contains(.noRequestAuthentication))
        #expect(!codes(deny, Self.requestAuthentication).contains(.noRequestAuthentication))
        // The RequestAuthentication alone, with a policy that reads no request principal, and with one that does.
        #expect(codes(Self.requestAuthentication).contains(.tokenNotRequired))
        let unrelated = Self.policy("q", action: "ALLOW", rules: "  - to: [{operation: {methods: [GET]}}]")
        #expect(codes(Self.requestAuthentication, unrelated).contains(.tokenNotRequired))
        let required = Self.policy("q", action: "ALLOW", rules: "  - from: [{source: {requestPrincipals: [\"*\"]}}]")
        #expect(!codes(Self.requestAuthentication, required).contains(.tokenNotRequired))
        #expect(!codes(Self.requestAuthentication, deny).contains(.tokenNotRequired))
    }

    @Test("a * in the middle of a path is warned with the template that means it; templates and ends are not")
    func pathInnerWildcard() {
        let inner = Self.policy("p", action: "ALLOW", rules: "  - to: [{operation: {paths: [\"/api/*/users\"]}}]")
        let found = PolicyAnalyzer.analyze(PolicyLoader.load(yaml: inner, file: "p.yaml").resources)
            + PolicyLoader.load(yaml: inner, file: "p.yaml").diagnostics
        #expect(found.contains { $0.code == .literalWildcard && $0.fix.contains("/api/{*}/users") }, "\(found)")
        for sound in ["/api/{*}/users", "/api/*", "*.json", "/api/{**}"] {
            let yaml = Self.policy("p", action: "ALLOW", rules: "  - to: [{operation: {paths: [\"\(sound)\"]}}]")
            #expect(!PolicyLoader.load(yaml: yaml, file: "p.yaml").diagnostics.contains { $0.code == .literalWildcard }, "\(sound)")
        }
    }

    @Test("values no request has: a path without /, a method in lower case, a principal with spiffe://")
    func neverMatches() {
        for rule in [
            "  - to: [{operation: {paths: [api/v1/*]}}]", "  - to: [{operation: {methods: [get]}}]",
            "  - from: [{source: {principals: [\"spiffe://cluster.local/ns/a/sa/b\"]}}]",
        ] {
            #expect(codes(Self.policy("p", action: "ALLOW", rules: rule), Self.strict).contains(.neverMatches), "\(rule)")
        }
        let sound = Self.policy("p", action: "ALLOW", rules: "  - to: [{operation: {paths: [/api/*, \"*.json\"], methods: [GET]}}]")
        #expect(!codes(sound).contains(.neverMatches))
    }

    @Test("a Service targetRef attaches to a waypoint Rampart does not run; a Gateway one to the gateway's pods")
    func targetRefs() {
        let service = Self.policy(
            "svc", action: "ALLOW", rules: "  - {}",
            extra: "  targetRefs: [{kind: Service, group: \"\", name: api}]\n")
        let gateway = Self.policy(
            "gw", action: "ALLOW", rules: "  - {}",
            extra: "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ingress}]\n")
        #expect(codes(service).contains(.targetNotEnforced))
        #expect(!codes(gateway).contains(.targetNotEnforced))
    }

    @Test("with a workload list: a namespace without workloads, and a namespaces value naming one, are warned")
    func unknownNamespaces() {
        let workloads = [Workload(namespace: "foo", labels: ["app": "api"]), Workload(namespace: "bar", labels: ["app": "client"])]
        func found(_ yaml: String) -> [DiagnosticCode] {
            PolicyAnalyzer.analyze(PolicyLoader.load(yaml: yaml, file: "p.yaml").resources, workloads: workloads).map(\.code)
        }
        let typo = Self.policy("p", action: "ALLOW", rules: "  - from: [{source: {namespaces: [barr, bar, \"b*\"]}}]")
        #expect(found(typo).filter { $0 == .unknownNamespace }.count == 1)
        // Patterns count too, matched as Istio matches them: qux-* and *-prod name no listed namespace.
        let patterns = Self.policy("p", action: "ALLOW", rules: "  - from: [{source: {namespaces: [\"qux-*\", \"*-prod\", \"f*\", \"*\"]}}]")
        #expect(found(patterns).filter { $0 == .unknownNamespace }.count == 2)
        let empty = Self.policy("p", action: "ALLOW", rules: "  - {}").replacingOccurrences(of: "namespace: foo", with: "namespace: nowhere")
        #expect(found(empty).contains(.selectsNothing))
        #expect(!found(Self.policy("p", action: "ALLOW", rules: "  - {}")).contains(.selectsNothing))
    }

    @Test("a selector naming a Gateway API gateway's pods is warned with the targetRefs Istio asks for (RP078, Istio's IST0166)")
    func selectorOnGatewayPods() {
        let selected = Self.policy(
            "gw", action: "ALLOW", rules: "  - {}", extra: "  selector: {matchLabels: {gateway.networking.k8s.io/gateway-name: web}}\n")
        let found = PolicyAnalyzer.analyze(PolicyLoader.load(yaml: selected, file: "p.yaml").resources)
        #expect(found.contains { $0.code == .selectorOnGatewayPods && $0.fix.contains("kind: Gateway, name: web") }, "\(found)")
        let targeted = Self.policy(
            "gw", action: "ALLOW", rules: "  - {}", extra: "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: web}]\n")
        #expect(!codes(targeted).contains(.selectorOnGatewayPods))
        #expect(!codes(Self.policy("app", action: "ALLOW", rules: "  - {}", extra: "  selector: {matchLabels: {app: web}}\n")).contains(.selectorOnGatewayPods))
    }

    @Test("ipBlocks or source.ip on an ingress gateway is warned: remoteIpBlocks sees the client")
    func gatewayClientAddress() {
        let gateway = Self.policy(
            "gw", action: "DENY", rules: "  - from: [{source: {ipBlocks: [203.0.113.0/24]}}]",
            extra: "  selector: {matchLabels: {istio: ingressgateway}}\n")
        #expect(codes(gateway, Self.strict).contains(.ipBlocksAtGateway))
        let remote = gateway.replacingOccurrences(of: "ipBlocks", with: "remoteIpBlocks")
        #expect(!codes(remote, Self.strict).contains(.ipBlocksAtGateway))
        let sidecar = gateway.replacingOccurrences(of: "istio: ingressgateway", with: "app: api")
        #expect(!codes(sidecar, Self.strict).contains(.ipBlocksAtGateway))
    }

    @Test("a null rule (a bare -) is an error, not a rule that matches everything")
    func nullRule() {
        let loaded = PolicyLoader.load(yaml: Self.policy("null", action: "ALLOW", rules: "  -"), file: "p.yaml")
        #expect(loaded.diagnostics.contains { $0.code == .emptyClause && $0.severity == .error && $0.field == "spec.rules[0]" }, "\(loaded.diagnostics)")
        #expect(PolicyEngine(loaded: loaded, excludeInvalid: true).snapshot.evaluate(Fixture.http()).decision == .allow)
        #expect(PolicyEngine(loaded: loaded, excludeInvalid: true).snapshot.workload(namespace: "foo", labels: [:]).policyCount == 0)
    }

    @Test("with workload ports: a TCP port where ALLOW policies apply but no rule can match TCP is warned (RP072)")
    func tcpPortShut() throws {
        let workloads = try Workload.list(from: PlainYAML.parse("""
            - {namespace: foo, name: db, labels: {app: db}, ports: [{port: 5432, name: tcp-postgres}, {port: 8080, name: http}, 9000]}
            - {namespace: foo, name: web, labels: {app: web}, ports: [{port: 8080, appProtocol: http, name: tcp-x}]}
            """))
        #expect(workloads[0].ports == [Workload.Port(port: 5432, isHTTP: false), Workload.Port(port: 8080, isHTTP: true)])
        #expect(workloads[1].ports == [Workload.Port(port: 8080, isHTTP: true)], "appProtocol is read before the name")
        func findings(_ documents: String...) -> [Diagnostic] {
            PolicyAnalyzer.analyze(PolicyLoader.load(yaml: documents.joined(separator: "---\n"), file: "p.yaml").resources, workloads: workloads)
                .filter { $0.code == .tcpPortShut }
        }
        let extra = "  selector: {matchLabels: {app: db}}\n"
        let http = Self.policy("db-http", action: "ALLOW", rules: "  - to: [{operation: {paths: [\"/admin*\"]}}]", extra: extra)
        let shut = findings(http)
        #expect(shut.count == 1 && shut.first?.message.contains("TCP port 5432 of foo/db") == true, "\(shut)")
        // A TCP-only rule for another port does not open 5432; one for 5432, or for no port, does.
        let other = Self.policy("db-other", action: "ALLOW", rules: "  - to: [{operation: {ports: [\"6379\"]}}]", extra: extra)
        #expect(findings(http, other).count == 1)
        let open = Self.policy("db-tcp", action: "ALLOW", rules: "  - from: [{source: {principals: [cluster.local/ns/foo/sa/app]}}]\n    to: [{operation: {ports: [\"5432\"]}}]", extra: extra)
        #expect(findings(http, open).isEmpty)
        let namespaceWide = Self.policy("ns", action: "ALLOW", rules: "  - from: [{source: {namespaces: [foo]}}]")
        #expect(findings(http, namespaceWide).isEmpty)
        // An ALLOW policy without rules (allow-nothing) shuts every port on purpose; one whose HTTP
        // rules name only other ports was not written for 5432.
        #expect(findings(Self.policy("nothing", action: "ALLOW", rules: "", extra: extra).replacingOccurrences(of: "  rules:\n\n", with: "")).isEmpty)
        #expect(findings(Self.policy("db-8080", action: "ALLOW", rules: "  - to: [{operation: {paths: [\"/admin\"], ports: [\"8080\"]}}]", extra: extra)).isEmpty)
        // No ALLOW policy (everything allowed), a DENY policy, or a workload whose ports are HTTP: nothing to warn.
        #expect(findings(Self.policy("deny", action: "DENY", rules: "  - to: [{operation: {paths: [\"/x\"], ports: [\"8080\"]}}]", extra: extra)).isEmpty)
        #expect(findings(Self.policy("web", action: "ALLOW", rules: "  - to: [{operation: {paths: [\"/\"]}}]", extra: "  selector: {matchLabels: {app: web}}\n")).isEmpty)

        // A list that is not one is refused, naming the entry and field.
        for (text, field) in [("- {namespace: foo, labls: {}}", "[0].labls"), ("- {namespace: foo, ports: [{port: 0, name: tcp}]}", "[0].ports[0].port"), ("- {namespace: [foo]}", "[0].namespace")] {
            #expect(throws: RequestDecodingError.self) { try Workload.list(from: PlainYAML.parse(text)) }
            do { _ = try Workload.list(from: PlainYAML.parse(text)) } catch { #expect(error.field == field, "\(text)") }
        }
    }
}
