@testable import RampartPolicy
import Testing

/// Outcomes of Istio's admission webhook (pkg/config/validation/validation.go and
/// pkg/config/security/security.go in istio/istio) on inputs beyond the conformance corpus.
@Suite("webhook parity")
struct WebhookParityTests {
    static func errors(_ yaml: String) -> [Diagnostic] {
        let loaded = PolicyLoader.load(yaml: yaml, file: "parity.yaml")
        return (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).filter { $0.severity == .error }
    }

    @Test(
        "service account fields exclude principals and namespaces, positive or negated, in one source",
        arguments: [
            "serviceAccounts: [ns/sa], notPrincipals: [x]", "serviceAccounts: [ns/sa], notNamespaces: [x]",
            "notServiceAccounts: [ns/sa], notPrincipals: [x]", "notServiceAccounts: [ns/sa], namespaces: [x]",
            "serviceAccounts: [ns/sa], principals: [x]",
        ])
    func serviceAccountCombinations(source: String) throws {
        let error = try #require(Self.errors(Fixture.policy("p", rules: "  - from: [{source: {\(source)}}]")).first)
        #expect(error.code == .badServiceAccount)
        #expect(error.field.hasPrefix("spec.rules[0].from[0].source."))
    }

    @Test(
        "an inline JWKS holding a key of an unknown kty is refused, as the webhook's JWK parser refuses the set",
        arguments: [(#"{"keys":[{"kty":"foo"}]}"#, true), (#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"},{"kty":"bar"}]}"#, true),
                    (#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#, false), (#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"a"}]}"#, false)])
    func unknownKeyType(jwks: String, refused: Bool) {
        let errors = Self.errors(Self.jwksRule(jwks))
        #expect(errors.contains { $0.code == .badJWKS && $0.message.contains("kty") } == refused, "\(errors)")
    }

    static func jwksRule(_ jwks: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: r, namespace: shop}
        spec:
          jwtRules:
          - issuer: https://issuer.example
            jwks: '\(jwks)'
        """
    }

    @Test("an inline key member that is not a string is refused, as the webhook's JWK parser refuses it")
    func mistypedKeyMember() {
        let errors = Self.errors(Self.jwksRule(#"{"keys":[{"kty":"EC","crv":"P-256","x":"WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis","y":7}]}"#))
        #expect(errors.contains { $0.code == .badJWKS && $0.message.contains("has a y that is not a string") }, "\(errors)")
    }

    @Test("a lone key instead of a set is accepted with a warning that the proxy will find no keys in it")
    func singleKey() {
        let yaml = Self.jwksRule(#"{"kty":"EC","crv":"P-256","x":"WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis","y":"y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE"}"#)
        #expect(Self.errors(yaml).isEmpty, "\(Self.errors(yaml))")
        let loaded = PolicyLoader.load(yaml: yaml, file: "parity.yaml")
        let warning = (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).first { $0.code == .singleJWK }
        #expect(warning?.severity == .warning && warning?.field == "spec.jwtRules[0].jwks", "\(String(describing: warning))")
        #expect(warning?.fix.contains(#"{"keys": ["#) == true)
        // Not a key either: still refused.
        #expect(Self.errors(Self.jwksRule(#"{"issuer":"x"}"#)).contains { $0.code == .badJWKS })
    }

    @Test("service accounts combine with the other source fields")
    func serviceAccountsWithOthers() {
        let rules = "  - from: [{source: {serviceAccounts: [ns/sa], ipBlocks: [10.0.0.0/8], trustDomains: [td]}}]"
        #expect(Self.errors(Fixture.policy("p", rules: rules)).isEmpty)
    }

    @Test("a Service target may name its group empty or core", arguments: ["\"\"", "core"])
    func serviceTargetGroup(group: String) {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: ns1}
            spec:
              targetRefs: [{group: \(group), kind: Service, name: reviews}]
              rules: [{}]
            """
        #expect(Self.errors(yaml).isEmpty)
        #expect(!Self.errors(yaml.replacingOccurrences(of: "kind: Service", with: "kind: Pod")).isEmpty)
    }

    @Test(
        "inline header condition keys are accepted in the request.headers form only",
        arguments: [
            ("request.experimental.inline.headers[x-a]", true), ("request.experimental.inline.headers[]", false),
            ("request.experimental.inline.headers", false),
        ])
    func inlineHeaderKeys(key: String, valid: Bool) {
        let errors = Self.errors(Fixture.policy("p", rules: "  - when: [{key: \"\(key)\", values: [a]}]"))
        #expect(errors.isEmpty == valid)
        if !valid { #expect(errors.map(\.code) == [.badCondition]) }
    }

    @Test(
        "jwksUri must parse as an http or https URL",
        arguments: [
            ("https://issuer.example.com/jwks", true), ("HTTPS://issuer.example.com/jwks", true),
            ("http://issuer.example.com:8080/keys", true), ("https://[::1]:8443/keys", true),
            ("https://issuer.example.com:/keys", true), ("https://user@issuer.example.com/keys", true),
            ("https://issuer.example.com/a%20b", true),
            ("https://issuer.example.com:not-a-number", false), ("https://issuer.example.com/%zz", false),
            ("https://issuer example.com/jwks", false), ("ftp://issuer.example.com/jwks", false),
            ("issuer.example.com/jwks", false), ("https://[::1/keys", false), ("https://issuer.example.com/a%2", false),
        ])
    func jwksURI(uri: String, valid: Bool) throws {
        let yaml = Fixture.requestAuthentication(["{issuer: a, jwksUri: \"\(uri)\"}"])
        let errors = Self.errors(yaml)
        #expect(errors.isEmpty == valid, "\(errors.map(\.description))")
        if !valid {
            let error = try #require(errors.first)
            #expect(error.code == .badJWTRule)
            #expect(error.field == "spec.jwtRules[0].jwksUri")
        }
    }

    @Test(
        "a JWKS fetch timeout is at least a millisecond and whole milliseconds",
        arguments: [
            ("5s", true), ("1ms", true), ("1.5s", true), ("0.5ms", false), ("1500us", false), ("1.0005s", false), ("2562047h", true),
            ("2562048h", false), ("9999999h", false), (".5s", true), ("5.s", true), ("1e3ms", false), ("1ms1ns", false),
            // Go truncates each fraction to whole nanoseconds: 0.6 ns is none, so this is one millisecond.
            ("1.0000006ms", true), ("1.0000016ms", false), ("1000\u{B5}s", true), ("1000\u{3BC}s", true),
            ("2562047h47m16.854s", true), ("9223372036854775807ns", false), ("9223372036854775808ns", false), ("1.s.", false),
        ])
    func timeout(value: String, valid: Bool) {
        let errors = Self.errors(Fixture.requestAuthentication(["{issuer: a, jwksUri: \"https://a.example/k\", timeout: \(value)}"]))
        #expect(errors.map(\.code) == (valid ? [] : [.badDuration]))
    }

    @Test("spaceDelimitedClaims may not hold an empty name")
    func spaceDelimitedClaims() {
        let errors = Self.errors(Fixture.requestAuthentication(["{issuer: a, spaceDelimitedClaims: [scope, \"\"]}"]))
        #expect(errors.map(\.code) == [.emptyValue])
        #expect(errors.first?.field == "spec.jwtRules[0].spaceDelimitedClaims[1]")
    }

    @Test("only AuthorizationPolicy takes the dry-run annotation", arguments: ["\"true\"", "\"false\""])
    func peerAuthenticationDryRun(value: String) {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: p, namespace: ns1, annotations: {istio.io/dry-run: \(value)}}
            spec: {mtls: {mode: STRICT}}
            """
        #expect(Self.errors(yaml).map(\.code) == [.badDryRun])
        #expect(Self.errors(yaml.replacingOccurrences(of: ", annotations: {istio.io/dry-run: \(value)}", with: "")).isEmpty)
    }
}

/// What Istio's webhook and CRD schema refuse on top of the above: sources and operations that set
/// only empty lists, strict claim header names, both key sources, and the schema's limits.
@Suite("webhook and schema parity: empty lists, names and limits")
struct SchemaLimitTests {
    static func ra(_ rule: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: ns1}
        spec:
          jwtRules:
          - \(rule)
        """
    }

    @Test(
        "a source or operation whose every field is an empty list is refused; one non-empty field is enough",
        arguments: [
            ("  - from: [{source: {principals: [], ipBlocks: []}}]", "spec.rules[0].from[0].source", false),
            ("  - to: [{operation: {methods: [], paths: []}}]", "spec.rules[0].to[0].operation", false),
            ("  - from: [{source: {principals: [], namespaces: [ns1]}}]", "", true),
            ("  - to: [{operation: {methods: [], paths: [/a]}}]", "", true),
        ])
    func emptyLists(rules: String, field: String, valid: Bool) {
        let errors = WebhookParityTests.errors(Fixture.policy("p", rules: rules))
        #expect(errors.isEmpty == valid, "\(errors)")
        if !valid {
            #expect(errors.map(\.code) == [.emptyClause] && errors.first?.field == field, "\(errors)")
            #expect(errors.first?.message.contains("only empty lists") == true)
        }
    }

    @Test("claim headers take Istio's strict names: letters, digits and '-' only", arguments: [
        ("x-user", true), ("X-User-2", true), ("x_user", false), ("x-user_id", false), ("x user", false),
    ])
    func claimHeaderNames(header: String, valid: Bool) {
        let errors = WebhookParityTests.errors(Self.ra("{issuer: iss, jwksUri: \"https://iss.example/jwks\", outputClaimToHeaders: [{header: \"\(header)\", claim: sub}]}"))
        #expect(errors.isEmpty == valid, "\(errors)")
        if !valid { #expect(errors.map(\.code) == [.badHeaderName] && errors.first?.field.hasSuffix(".header") == true) }
    }

    @Test("jwks and jwksUri together are refused")
    func bothKeySources() {
        let jwks = #"{\"keys\":[{\"kty\":\"oct\",\"k\":\"YWJj\"}]}"#
        let errors = WebhookParityTests.errors(Self.ra("{issuer: iss, jwksUri: \"https://iss.example/jwks\", jwks: \"\(jwks)\"}"))
        #expect(errors.map(\.code) == [.badJWTRule], "\(errors)")
        #expect(errors.first?.field == "spec.jwtRules[0].jwks")
    }

    @Test("the schema's limits: 512 rules, 16 targetRefs, a 2048-character jwksUri")
    func limits() {
        let rules = String(repeating: "  - to: [{operation: {paths: [/a]}}]\n", count: 513)
        #expect(WebhookParityTests.errors(Fixture.policy("p", rules: rules)).map(\.code) == [.overLimit])
        let fewer = String(repeating: "  - to: [{operation: {paths: [/a]}}]\n", count: 512)
        #expect(WebhookParityTests.errors(Fixture.policy("p", rules: fewer)).isEmpty)
        let refs = (0..<17).map { "{kind: Service, group: \"\", name: s\($0)}" }.joined(separator: ", ")
        let targeted = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: ns1}
            spec:
              targetRefs: [\(refs)]
              rules: [{}]
            """
        #expect(WebhookParityTests.errors(targeted).map(\.code) == [.overLimit])
        let long = "https://iss.example/" + String(repeating: "a", count: 2048)
        #expect(WebhookParityTests.errors(Self.ra("{issuer: iss, jwksUri: \"\(long)\"}")).map(\.code) == [.overLimit])
    }

    /// What a selector label gets: nothing, a warning that no workload can carry it (RP074), or an
    /// error where Istio's webhook or schema refuses it (RP010: an empty key, a `*`, a value over 63
    /// characters).
    enum LabelOutcome: Sendable { case valid, warning, error }

    @Test("selector labels: Istio refuses empty keys, wildcards and values over 63 characters; other non-Kubernetes labels are warned about", arguments: [
        ("app", "reviews", LabelOutcome.valid), ("app.kubernetes.io/name", "reviews", .valid), ("app", "", .valid),
        ("app", "v1.2_b-c", .valid), ("app", String(repeating: "a", count: 63), .valid),
        ("app", String(repeating: "a", count: 64), .error), ("app", "rev*", .error), ("ap*", "x", .error), ("", "x", .error),
        ("app", "-reviews", .warning), ("app", "rev iews", .warning), ("app", "a/b", .warning),
        ("Bad_Prefix/app", "x", .warning), ("my key", "v", .warning), (String(repeating: "k", count: 64), "x", .warning),
    ])
    func labels(key: String, value: String, outcome: LabelOutcome) {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: ns1}
            spec:
              selector: {matchLabels: {"\(key)": "\(value)"}}
              rules: [{}]
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "parity.yaml")
        let found = loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)
        let codes = found.map(\.code)
        switch outcome {
        case .valid: #expect(codes.isEmpty, "\(found)")
        case .warning:
            #expect(codes == [.unusualLabel] && found[0].severity == .warning, "\(found)")
            #expect(found.first?.field == "spec.selector.matchLabels.\(key)", "\(found)")
        case .error: #expect(codes == [.badSelector] && found[0].severity == .error, "\(found)")
        }
    }

    @Test("a RequestAuthentication's issuer, when written, is not empty (Istio's schema); left out, any issuer is accepted")
    func emptyIssuer() {
        let empty = WebhookParityTests.errors(Self.ra("{issuer: \"\", jwksUri: \"https://iss.example/jwks\"}"))
        #expect(empty.map(\.code) == [.badJWTRule] && empty.first?.field == "spec.jwtRules[0].issuer", "\(empty)")
        #expect(empty.first?.line == 6, "\(empty)")
        #expect(WebhookParityTests.errors(Self.ra("{jwksUri: \"https://iss.example/jwks\"}")).isEmpty)
        let neither = WebhookParityTests.errors(Self.ra("{issuer: \"\"}"))
        #expect(Set(neither.map(\.code)) == [.badJWTRule] && neither.count == 2, "\(neither)")
    }

    @Test("service account fields and principal or namespace fields may not both be written, even as empty lists")
    func serviceAccountsWithEmptyLists() {
        let errors = WebhookParityTests.errors(Fixture.policy("p", rules: "  - from: [{source: {serviceAccounts: [sa], principals: []}}]"))
        #expect(errors.map(\.code) == [.badServiceAccount], "\(errors)")
    }

    @Test("Istio's internal annotations are refused", arguments: ["internal.istio.io/webhook-always-reject", "internal.istio.io/parents", "internal.istio.io/parent-namespace"])
    func internalAnnotations(key: String) {
        let errors = WebhookParityTests.errors(Fixture.policy("p", extra: ", annotations: {\(key): \"x\"}", rules: "  - {}"))
        #expect(errors.map(\.code) == [.badMetadata] && errors.first?.field == "metadata.annotations.\(key)", "\(errors)")
        #expect(WebhookParityTests.errors(Fixture.policy("p", extra: ", annotations: {example.com/owner: \"x\"}", rules: "  - {}")).isEmpty)
    }

    @Test("a finding that only restates a reading error is left out; errors name the entry and field at fault")
    func followOnsAndPlaces() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: a, namespace: ns1}
            spec:
              selector: {matchLabels: {version: 1}}
              rules:
              - to: [{operation: {pathz: [/a]}}]
                when: [{key: "destination.port", values: [8080]}]
              - to: [{operation: {}}]
            ---
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: r, namespace: ns1}
            spec:
              jwtRules:
              - {issuer: iss, jwksUri: "https://iss.example/jwks", audiences: [a, ""], fromParams: [t, ""], timeout: -1s}
              targetRefs: [{group: apps, kind: Service, name: x}]
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "f.yaml")
        let found = PolicyEngine.withoutFollowOns(loaded.diagnostics, PolicyAnalyzer.analyze(loaded.resources))
        // RP077 (no policy requires the RequestAuthentication's tokens) is the analyzer's own.
        let fields = found.filter { $0.code != .tokenNotRequired }.map { "\($0.code.rawValue) \($0.field)" }
        #expect(
            Set(fields) == [
                "RP005 spec.selector.matchLabels.version", "RP004 spec.rules[0].to[0].operation.pathz",
                "RP005 spec.rules[0].when[0].values[0]", "RP024 spec.rules[1].to[0].operation",
                "RP025 spec.jwtRules[0].audiences[1]", "RP025 spec.jwtRules[0].fromParams[1]",
                "RP044 spec.jwtRules[0].timeout", "RP012 spec.targetRefs[0].group",
            ], "\(fields)")
        #expect(found.first { $0.code == .badDuration }?.message.contains("negative") == true)
        // Without the filter the empty selector, operation and condition would be reported too.
        #expect(loaded.diagnostics.count + PolicyAnalyzer.analyze(loaded.resources).count > found.count)
    }

    @Test(
        "targetRefs written as an empty list counts as set beside a selector or a targetRef, as the schema's has() counts it",
        arguments: [
            ("AuthorizationPolicy", "selector: {matchLabels: {app: a}}\n  targetRefs: []", "spec.selector"),
            ("AuthorizationPolicy", "targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: g}\n  targetRefs: []", "spec.targetRefs"),
            ("RequestAuthentication", "selector: {matchLabels: {app: a}}\n  targetRefs: []", "spec.selector"),
        ])
    func emptyTargetRefs(kind: String, spec: String, field: String) throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: \(kind)
            metadata: {name: p, namespace: ns1}
            spec:
              \(spec)
            """
        let error = try #require(WebhookParityTests.errors(yaml).first { $0.code == .badTargetRef })
        #expect(error.field == field && error.message.contains("targetRefs: [] counts as set"), "\(error)")
        // Alone, or written as null, an empty targetRefs is no target reference.
        #expect(WebhookParityTests.errors(yaml.replacingOccurrences(of: "targetRefs: []", with: "targetRefs: null")).isEmpty)
        let alone = spec.split(separator: "\n").last.map(String.init) ?? ""
        #expect(WebhookParityTests.errors(yaml.replacingOccurrences(of: spec, with: alone)).isEmpty)
    }

    @Test("a known kind under a misspelt or foreign group blames apiVersion and names the group")
    func misspeltGroup() throws {
        let yaml = Fixture.policy("p", rules: "  - {}").replacingOccurrences(of: "security.istio.io/v1", with: "securty.istio.io/v1beta1")
        let error = try #require(WebhookParityTests.errors(yaml).first)
        #expect(error.code == .unknownKind && error.field == "apiVersion")
        #expect(error.message.contains("misspelling of security.istio.io") && error.fix == "write apiVersion: security.istio.io/v1beta1", "\(error)")
        let foreign = try #require(WebhookParityTests.errors(yaml.replacingOccurrences(of: "securty.istio.io", with: "networking.istio.io")).first)
        #expect(foreign.field == "apiVersion" && !foreign.message.contains("misspelling"), "\(foreign)")
    }

    @Test("a trust domain with a * in the middle is one error (RP030), with no second warning that it matches literally")
    func innerWildcardTrustDomain() {
        let loaded = PolicyLoader.load(yaml: Fixture.policy("p", rules: "  - from: [{source: {trustDomains: [\"a*b\"]}}]"), file: "p.yaml")
        let found = loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)
        #expect(found.map(\.code) == [.badWildcard], "\(found)")
    }

    @Test("an empty principal is one error, with no second warning about its trust domain")
    func emptyPrincipal() {
        let loaded = PolicyLoader.load(
            yaml: Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {principals: [\"\"], requestPrincipals: [\"\"]}}]"),
            file: "p.yaml")
        let found = loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)
        #expect(found.filter { $0.code == .emptyValue }.count == 2, "\(found)")
        #expect(!found.contains { $0.code == .neverMatches }, "\(found)")
    }
}
