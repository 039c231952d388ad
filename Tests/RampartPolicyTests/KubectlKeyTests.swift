@testable import RampartPolicy
import Testing
import Yams

/// Mapping keys as kubectl sends them: go-yaml v2 types an unquoted key as it types a value
/// (`resolve.go`), and sigs.k8s.io/yaml writes the typed key back as JSON text.
@Suite("mapping keys as kubectl reads them")
struct KubectlKeyTests {
    static func key(_ written: String) -> KubernetesScalars.KeyReading? {
        KubernetesScalars.jsonKey(of: Node.scalar(Node.Scalar(written, .implicit, .plain)))
    }

    @Test(
        "unquoted keys: numbers in decimal, floats as Go's shortest %g of a float32, booleans as true and false",
        arguments: [
            ("80", "80"), ("010", "8"), ("0x50", "80"), ("0X1f", "31"), ("0o17", "15"), ("0b101", "5"), ("8_080", "8080"),
            ("+80", "80"), ("-7", "-7"), ("-0", "0"), ("08", "8"), ("080", "80"), ("1e3", "1000"), ("80.0", "80"),
            ("1.5", "1.5"), (".5", "0.5"), ("1e6", "1e+06"), ("123456", "123456"), ("1234567.0", "1.234567e+06"),
            ("0.0001", "0.0001"), ("0.00001", "1e-05"), ("0.1", "0.1"), ("1e-7", "1e-07"), (".inf", ".inf"), ("-.Inf", "-.inf"),
            (".NaN", ".nan"), ("99999999999999999999", "1e+20"),
            ("yes", "true"), ("On", "true"), ("y", "true"), ("N", "false"), ("off", "false"), ("FALSE", "false"),
            ("app", "app"), ("yesterday", "yesterday"), ("0x", "0x"), ("1_", "1"), ("2001-12-14", "2001-12-14"), ("10:30", "10:30"),
            ("1.2.3", "1.2.3"), ("+", "+"), ("-a", "-a"), (".a", ".a"), ("0x1p3", "0x1p3"), ("nan", "nan"), ("Yes!", "Yes!"),
        ])
    func typedKeys(written: String, sent: String) {
        #expect(Self.key(written) == .key(sent), "\(written)")
    }

    @Test("quoted keys and keys with a tag are sent as written")
    func quotedKeys() {
        for style in [Node.Scalar.Style.singleQuoted, .doubleQuoted] {
            #expect(KubernetesScalars.jsonKey(of: Node.scalar(Node.Scalar("010", .implicit, style))) == .key("010"))
            #expect(KubernetesScalars.jsonKey(of: Node.scalar(Node.Scalar("yes", .implicit, style))) == .key("yes"))
        }
    }

    @Test("a null key and an integer past Int64 cannot become JSON keys", arguments: ["null", "~", "NULL", "18446744073709551615"])
    func unsupportedKeys(written: String) {
        guard case .unsupported = Self.key(written) else {
            Issue.record("\(written) read as \(String(describing: Self.key(written)))")
            return
        }
    }

    @Test("selector labels written as YAML 1.1 booleans or numbers are the labels kubectl sends; a null label key is refused")
    func selectorKeys() throws {
        let yaml = SchemaParityTests.document(
            "AuthorizationPolicy", "  selector:\n    matchLabels:\n      yes: a\n      0x10: b\n      app: c\n  action: DENY\n  rules:\n  - {}\n")
        let loaded = PolicyLoader.load(yaml: yaml, file: "keys.yaml")
        #expect(loaded.diagnostics.filter { $0.severity == .error }.isEmpty, "\(loaded.diagnostics)")
        let converted = loaded.diagnostics.filter { $0.code == .convertedKey }
        #expect(converted.map(\.line).sorted() == [7, 8] && converted.allSatisfy { $0.severity == .warning }, "\(converted)")
        #expect(converted.contains { $0.message.contains("yes") && $0.message.contains("\"true\"") && $0.field == "spec.selector.matchLabels.true" })
        guard case .authorizationPolicy(let policy)? = loaded.resources.first else {
            Issue.record("no AuthorizationPolicy read: \(loaded.diagnostics)")
            return
        }
        #expect(policy.selector?.matchLabels == ["true": "a", "16": "b", "app": "c"])

        let null = SchemaParityTests.errors(
            SchemaParityTests.document("AuthorizationPolicy", "  selector:\n    matchLabels:\n      null: a\n  action: DENY\n  rules:\n  - {}\n"))
        #expect(null.map(\.code) == [.wrongType] && null.first?.line == 7, "\(null)")
        #expect(null.first?.message.contains("null") == true && null.first?.fix.contains("\"null\"") == true, "\(null)")
        let quoted = SchemaParityTests.errors(
            SchemaParityTests.document("AuthorizationPolicy", "  selector:\n    matchLabels:\n      'null': a\n  action: DENY\n  rules:\n  - {}\n"))
        #expect(quoted.isEmpty, "\(quoted)")
    }

    @Test("an unknown field kubectl reads as a boolean is named as written and as sent")
    func unknownBooleanField() {
        let found = SchemaParityTests.errors(SchemaParityTests.document("AuthorizationPolicy", "  on: x\n"))
        #expect(found.map(\.code) == [.unknownField], "\(found)")
        #expect(found.first?.message.contains("\"on\" (which kubectl sends as \"true\")") == true, "\(found)")
    }

    @Test("an empty jwks beside a jwksUri is refused: the schema counts a field written empty as set")
    func emptyJWKSBesideURI() {
        let both = SchemaParityTests.errors(SchemaParityTests.document(
            "RequestAuthentication", "  jwtRules:\n  - issuer: a\n    jwksUri: https://example.com/jwks.json\n    jwks: \"\"\n"))
        #expect(both.map(\.code) == [.badJWTRule] && both.first?.field == "spec.jwtRules[0].jwks" && both.first?.line == 8, "\(both)")
        for spec in [
            "  jwtRules:\n  - issuer: a\n    jwks: \"\"\n",
            "  jwtRules:\n  - issuer: a\n    jwksUri: https://example.com/jwks.json\n    jwks: null\n",
        ] {
            #expect(SchemaParityTests.errors(SchemaParityTests.document("RequestAuthentication", spec)).isEmpty, "\(spec)")
        }
    }
}
