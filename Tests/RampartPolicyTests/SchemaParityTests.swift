@testable import RampartPolicy
import Testing

/// What Istio's CRD schema (manifests/charts/base/files/crd-all.gen.yaml in istio/istio) and its
/// webhook's conversion and value checks accept and refuse, beyond the conformance corpus: size
/// limits, where a `*` may sit, addresses as Go's netip reads them, and durations and map keys as
/// the webhook's JSON decoding reads them.
@Suite("schema and webhook parity")
struct SchemaParityTests {
    /// The findings for one document, without RP077 (a RequestAuthentication analyzed without the
    /// policy that requires its tokens), which every RequestAuthentication alone gets.
    static func diagnostics(_ yaml: String) -> [Diagnostic] {
        let loaded = PolicyLoader.load(yaml: yaml, file: "schema.yaml")
        return (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).filter { $0.code != .tokenNotRequired }
    }

    static func errors(_ yaml: String) -> [Diagnostic] { diagnostics(yaml).filter { $0.severity == .error } }

    static func document(_ kind: String, _ spec: String) -> String {
        "apiVersion: security.istio.io/v1\nkind: \(kind)\nmetadata: {name: p, namespace: ns1}\nspec:\n\(spec)"
    }

    @Test("size limits: 512 from entries, 4096 selector labels, 253-character target names, 4096 JWT rules, 64 space-delimited claims")
    func sizeLimits() {
        let cases: [(spec: (Int) -> String, kind: String, limit: Int, field: String)] = [
            ({ "  rules:\n  - from:\n" + String(repeating: "    - source: {namespaces: [a]}\n", count: $0) }, "AuthorizationPolicy", 512,
             "spec.rules[0].from"),
            ({ "  selector:\n    matchLabels:\n" + (0..<$0).map { "      k\($0): v\n" }.joined() + "  rules: [{}]\n" }, "AuthorizationPolicy",
             4096, "spec.selector.matchLabels"),
            ({ "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: \(String(repeating: "a", count: $0))}]\n" },
             "RequestAuthentication", 253, "spec.targetRefs[0].name"),
            ({ "  jwtRules:\n" + (0..<$0).map { "  - {issuer: i\($0)}\n" }.joined() }, "RequestAuthentication", 4096, "spec.jwtRules"),
            ({ "  jwtRules:\n  - issuer: iss\n    spaceDelimitedClaims: [\((0..<$0).map { "c\($0)" }.joined(separator: ","))]\n" },
             "RequestAuthentication", 64, "spec.jwtRules[0].spaceDelimitedClaims"),
        ]
        for item in cases {
            #expect(Self.errors(Self.document(item.kind, item.spec(item.limit))).isEmpty, "\(item.field) at \(item.limit)")
            let over = Self.errors(Self.document(item.kind, item.spec(item.limit + 1)))
            #expect(over.map(\.code) == [.overLimit] && over.first?.field == item.field, "\(item.field): \(over)")
            #expect(over.first?.message.contains("\(item.limit)") == true)
        }
    }

    @Test("an empty jwksUri is refused, as the schema's minimum length refuses it, not read as no URI")
    func emptyJWKSURI() {
        let errors = Self.errors(Self.document("RequestAuthentication", "  jwtRules:\n  - {issuer: iss, jwksUri: ''}\n"))
        #expect(errors.map(\.code) == [.badJWTRule] && errors.first?.field == "spec.jwtRules[0].jwksUri", "\(errors)")
    }

    @Test(
        "a * inside a when value is matched literally and warned of; inside a trust domain it is refused (source.namespace, where it is a wildcard, in PrincipalRegexTests)",
        arguments: [
            ("source.principal", "cluster.local/ns/*/sa/x", false),
            ("request.auth.audiences", "a*b", false), ("request.headers[x-id]", "a*b", false),
            ("request.auth.claims[groups]", "a*b", false), ("connection.sni", "a*.example.com", false),
            ("source.trustDomain", "fo*-bar", true),
        ])
    func innerWildcard(key: String, value: String, refused: Bool) {
        let found = Self.diagnostics(Fixture.policy("p", rules: "  - when: [{key: \"\(key)\", values: [\"\(value)\"]}]"))
        let errors = found.filter { $0.severity == .error }
        if refused {
            #expect(errors.map(\.code) == [.badWildcard], "\(found)")
        } else {
            #expect(errors.isEmpty, "\(errors)")
            #expect(found.contains { $0.code == .literalWildcard && $0.field == "spec.rules[0].when[0].values[0]" }, "\(found)")
        }
    }

    @Test(
        "addresses as Go's netip reads them: no leading zero in a prefix length; an IPv6 zone accepted, and dropped as Istio drops it",
        arguments: [
            ("1.2.3.4/08", DiagnosticCode.badIP), ("10.0.0.0/0", nil), ("10.0.0.0/8", nil), ("2001:db8::/032", .badIP),
            ("fe80::1%eth0", nil), ("fe80::1%25", nil), ("fe80::1%eth0/64", .badIP), ("fe80::1%", .badIP), ("1.2.3.4%eth0", .badIP),
            // No sign anywhere, and an embedded IPv4 address only at the end.
            ("+1.2.3.4", .badIP), ("-0.1.2.3", .badIP), ("::+1", .badIP), ("1:2:3:4:5:6:7:+8", .badIP), ("+10.0.0.0/8", .badIP),
            ("1.2.3.4::", .badIP), ("1.2.3.4::5", .badIP), ("10.0.0.1::/64", .badIP), ("::ffff:1.2.3.4", nil),
            ("1:2:3:4:5:6:1.2.3.4", nil), ("::FFFF:a:B", nil),
        ])
    func addresses(value: String, code: DiagnosticCode?) {
        for rules in ["  - from: [{source: {ipBlocks: [\"\(value)\"]}}]", "  - when: [{key: destination.ip, values: [\"\(value)\"]}]"] {
            let found = Self.diagnostics(Fixture.policy("p", rules: rules)).filter { $0.code == .badIP || $0.code == .neverMatches }
            #expect(found.map(\.code) == (code.map { [$0] } ?? []), "\(value) in \(rules): \(found)")
        }
        // A zoned address is the address alone, as Istio's generator hands it to Envoy: a DENY on it
        // refuses that address, and only that one.
        if code == nil && value.contains("%") {
            let engine = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {ipBlocks: [\"\(value)\"]}}]"))
            for (source, denied) in [("fe80::1", true), ("fe80::2", false)] {
                let request = AuthzRequest(
                    transport: .http, source: AuthzRequest.Source(principal: "cluster.local/ns/ns1/sa/a", ip: source),
                    destination: AuthzRequest.Destination(namespace: "ns1", labels: ["app": "b"], port: 8080), method: "GET", host: "b.ns1",
                    path: "/")
                #expect(engine.snapshot.evaluate(request).decision == (denied ? .deny : .allow), "\(value) against \(source)")
            }
        }
    }

    @Test("the schema's length limits count characters, as Kubernetes counts them, not UTF-8 bytes; Go's durations take both micro signs")
    func charactersNotBytes() {
        let accented = String(repeating: "\u{E9}", count: 40)  // 40 characters, 80 bytes
        for kind in ["AuthorizationPolicy", "PeerAuthentication"] {
            #expect(Self.errors(Self.document(kind, "  selector: {matchLabels: {app: \"\(accented)\"}}\n")).isEmpty, "\(kind)")
            let long = String(repeating: "\u{E9}", count: 64)
            #expect(Self.errors(Self.document(kind, "  selector: {matchLabels: {app: \"\(long)\"}}\n")).map(\.code) == [.badSelector], "\(kind)")
        }
        let target = String(repeating: "\u{E9}", count: 200)
        #expect(Self.errors(Self.document("AuthorizationPolicy", "  targetRefs: [{kind: Service, group: \"\", name: \"\(target)\"}]\n")).isEmpty)
        let uri = "https://keys.example.com/" + String(repeating: "\u{E9}", count: 1100)
        #expect(Self.errors(Self.document("RequestAuthentication", "  jwtRules: [{issuer: iss, jwksUri: \"\(uri)\"}]\n")).filter { $0.code == .overLimit }.isEmpty)
        for micro in ["\u{B5}", "\u{3BC}"] {
            #expect(Self.errors(Self.document("RequestAuthentication", "  jwtRules: [{issuer: iss, jwksUri: \"https://k.example.com/jwks\", timeout: \"1000\(micro)s\"}]\n")).isEmpty, "\(micro)")
        }
    }

    @Test("a JWT timeout takes Go's leading +; a quoted portLevelMtls key is a JSON number, with no sign or leading zero")
    func durationsAndPortKeys() throws {
        #expect(Self.errors(Self.document("RequestAuthentication", "  jwtRules:\n  - {issuer: iss, timeout: +5s}\n")).isEmpty)
        #expect(Self.errors(Self.document("RequestAuthentication", "  jwtRules:\n  - {issuer: iss, timeout: -5s}\n")).map(\.code) == [.badDuration])
        // The schema's int(key) takes "080", but Istio's webhook decodes the spec with the legacy
        // jsonpb, which reads a uint32 map key as a JSON number: "080" and "+80" are refused.
        for key in ["\"080\"", "\"+80\"", "\"0x50\"", "\"80.0\"", "\" 80\""] {
            let found = Self.errors(Self.document("PeerAuthentication", "  selector: {matchLabels: {app: a}}\n  portLevelMtls: {\(key): {mode: STRICT}}\n"))
            #expect(found.map(\.code) == [.badPort] && found.first?.line == 6, "\(key): \(found)")
        }
        #expect(
            Self.errors(Self.document("PeerAuthentication", "  selector: {matchLabels: {app: a}}\n  portLevelMtls: {\"080\": {mode: STRICT}}\n"))
                .first?.message.contains("leading zero") == true)
        #expect(Self.diagnostics(Self.document("PeerAuthentication", "  selector: {matchLabels: {app: a}}\n  portLevelMtls: {\"80\": {mode: STRICT}}\n")).isEmpty)
    }

    @Test(
        "an unquoted portLevelMtls key is the number kubectl reads (YAML 1.1: octal, hex, underscores, exponents), warned of when not plain decimal",
        arguments: [("010", 8), ("0x50", 80), ("8_080", 8080), ("+80", 80), ("1e3", 1000), ("080", 80), ("0o17", 15), ("0b1010000", 80), ("80.0", 80)])
    func unquotedPortKeys(written: String, port: Int) throws {
        let yaml = Self.document("PeerAuthentication", "  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    \(written): {mode: STRICT}\n")
        let found = Self.diagnostics(yaml)
        #expect(found.map(\.code) == [.paddedPortKey] && found.first?.severity == .warning && found.first?.line == 7, "\(found)")
        #expect(found.first?.message.contains("port \(port)") == true, "\(found)")
        guard case .peerAuthentication(let policy)? = PolicyLoader.load(yaml: yaml, file: "schema.yaml").resources.first else {
            Issue.record("no PeerAuthentication read")
            return
        }
        #expect(policy.portLevelMTLS == [port: .strict])
    }

    @Test("an outputPayloadToHeader no request can carry is accepted, as by the webhook, and warned of")
    func payloadHeader() {
        for name in ["x payload!", ":path"] {
            let found = Self.diagnostics(Self.document("RequestAuthentication", "  jwtRules:\n  - {issuer: iss, outputPayloadToHeader: '\(name)'}\n"))
            #expect(found.map(\.code) == [.unsendableHeader] && found.allSatisfy { $0.severity == .warning }, "\(found)")
        }
        #expect(Self.diagnostics(Self.document("RequestAuthentication", "  jwtRules:\n  - {issuer: iss, outputPayloadToHeader: x-jwt.payload}\n")).isEmpty)
    }

    @Test("a target reference's error names what is wrong: no kind, the group its kind belongs to, a kind's case")
    func targetMessages() {
        let cases: [(ref: String, field: String, says: String)] = [
            ("{group: gateway.networking.k8s.io, name: g}", "spec.targetRefs[0].kind", "no kind"),
            ("{group: \"\", kind: Gateway, name: g}", "spec.targetRefs[0].group", "gateway.networking.k8s.io"),
            ("{group: \"\", kind: service, name: s}", "spec.targetRefs[0].kind", "case-sensitive"),
        ]
        for item in cases {
            let errors = Self.errors(Self.document("AuthorizationPolicy", "  targetRefs: [\(item.ref)]\n  rules: [{}]\n"))
                .filter { $0.code == .badTargetRef }
            #expect(errors.count == 1 && errors[0].field == item.field && errors[0].message.contains(item.says), "\(item.ref): \(errors)")
        }
        let range = Self.errors(Fixture.policy("p", rules: "  - to: [{operation: {ports: [\"80-90\"]}}]"))
        #expect(range.first?.message.contains("port range") == true, "\(range)")
    }
}
