@testable import RampartPolicy
import Testing

/// `serviceAccounts` against SPIFFE IDs that are not Istio workload IDs, matched with the regex
/// Istio's generator builds (`spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`,
/// pilot/pkg/security/authz/model/generator.go serviceAccountRegex).
@Suite("service accounts in other SPIFFE IDs")
struct ServiceAccountRegexTests {
    @Test(
        "extra segments between the namespace and sa, and after the name, still match; partial names do not",
        arguments: [
            ("cluster.local/ns/ns1/sa/a", true), ("cluster.local/ns/ns1/sa/a/extra", true),
            ("cluster.local/ns/ns1/x/y/sa/a", true), ("td/with/slashes/ns/ns1/sa/a", true),
            ("cluster.local/ns/ns1/sa/a/", false), ("cluster.local/ns/ns1/sa/ab", false),
            ("cluster.local/ns/ns1/xsa/a", false), ("cluster.local/ns/ns2/sa/a", false),
            ("cluster.local/ns/ns1x/sa/a", false), ("cluster.local/ns/ns1/sa", false),
        ])
    func regex(principal: String, matches: Bool) {
        let pattern = ServiceAccountPattern("ns1/a")
        #expect(pattern?.matches(principal: principal) == matches)
        let engine = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {serviceAccounts: [ns1/a]}}]"))
        #expect(IstioValueSemanticsTests.decide(engine, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
        let negated = Fixture.engine(
            Fixture.policy("p", action: "DENY", rules: "  - when: [{key: source.serviceAccount, notValues: [a]}]"))
        #expect(IstioValueSemanticsTests.decide(negated, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
    }
}

/// Values Istio puts into regexes unescaped: a `.` in a `serviceAccounts` value or after the `*`
/// of a wildcard-prefixed principal stands for any one character (generator.go's
/// serviceAccountRegex; matcher/string.go's StringMatcherWithPrefix, `spiffe://.*<suffix>`).
/// Exact and `prefix*` principals are compared literally, as Envoy's exact and prefix matchers are.
@Suite("regex dots in identities")
struct RegexDotTests {
    @Test(
        "a service account's dots match any character, in Istio workload IDs and in other IDs alike",
        arguments: [
            ("cluster.local/ns/ns1/sa/build-bot", true), ("cluster.local/ns/ns1/sa/build.bot", true),
            ("cluster.local/ns/ns1/sa/buildXbot", true), ("cluster.local/ns/ns1/x/sa/build_bot", true),
            ("cluster.local/ns/ns1/sa/buildbot", false), ("cluster.local/ns/ns1/sa/build--bot", false),
            ("cluster.local/ns/ns2/sa/build-bot", false),
        ])
    func serviceAccounts(principal: String, denied: Bool) {
        let deny = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {serviceAccounts: [\"ns1/build.bot\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(deny, Fixture.http(principal: principal)) == (denied ? .deny : .allow))
        let condition = Fixture.engine(
            Fixture.policy("p", action: "DENY", rules: "  - when: [{key: source.serviceAccount, values: [\"ns1/build.bot\"]}]"))
        #expect(IstioValueSemanticsTests.decide(condition, Fixture.http(principal: principal)) == (denied ? .deny : .allow))
    }

    @Test(
        "a wildcard-prefixed principal's dots match any character; exact and prefix principals are literal",
        arguments: [
            // (pattern, principal, matches)
            ("*cluster.local/ns/a/sa/b", "cluster.local/ns/a/sa/b", true),
            ("*cluster.local/ns/a/sa/b", "clusterXlocal/ns/a/sa/b", true),
            ("*cluster.local/ns/a/sa/b", "td/clusterXlocal/ns/a/sa/b", true),
            ("*cluster.local/ns/a/sa/b", "cluster.local/ns/a/sa/c", false),
            ("*.local/ns/a/sa/b", "x-local/ns/a/sa/b", true),
            ("*.local/ns/a/sa/b", "local/ns/a/sa/b", false),
            ("*/sa/b", "cluster.local/ns/a/sa/b", true),
            ("cluster.local/ns/a/sa/b", "clusterXlocal/ns/a/sa/b", false),
            ("cluster.local/*", "clusterXlocal/ns/a/sa/b", false),
        ])
    func principals(pattern: String, principal: String, matches: Bool) {
        let allow = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {principals: [\"\(pattern)\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(allow, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
        let notPrincipals = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {notPrincipals: [\"\(pattern)\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(notPrincipals, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
        let condition = Fixture.engine(Fixture.policy("p", rules: "  - when: [{key: source.principal, values: [\"\(pattern)\"]}]"))
        #expect(IstioValueSemanticsTests.decide(condition, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
    }
}

/// The rest of a wildcard-prefixed principal holding other regex operators is matched as the
/// regular expression Istio makes of it, `spiffe://.*<rest>` (matcher/string.go's
/// StringMatcherWithPrefix), by both evaluation paths.
@Suite("regex operators in principals and namespaces")
struct PrincipalRegexTests {
    @Test(
        "a wildcard-prefixed principal's rest is a regular expression: * repeats, | chooses, [] is a class",
        arguments: [
            // (pattern, principal, matches)
            ("*/ns/ns1/*", "td/ns/ns1", true),
            ("*/ns/ns1/*", "td/ns/ns1//", true),
            ("*/ns/ns1/*", "td/ns/ns1/sa/a", false),
            ("*/ns/ns1/*", "td/ns/ns1x", false),
            ("*a*b", "cluster.local/ns/x/sa/b", true),
            ("*a*b", "cluster.local/ns/x/sa/c", false),
            ("*/sa/(a|b)", "cluster.local/ns/x/sa/a", true),
            ("*/sa/(a|b)", "cluster.local/ns/x/sa/b", true),
            ("*/sa/(a|b)", "cluster.local/ns/x/sa/c", false),
            ("*/sa/(a|b)", "cluster.local/ns/x/sa/ab", false),
            ("*/sa/x+", "cluster.local/ns/x/sa/xxx", true),
            ("*/sa/x+", "cluster.local/ns/x/sa/", false),
            ("*/sa/[ab]-api", "cluster.local/ns/x/sa/b-api", true),
            ("*/sa/[ab]-api", "cluster.local/ns/x/sa/c-api", false),
            ("*/ns/x/sa/a?", "cluster.local/ns/x/sa/", true),
            ("*/ns/x/sa/a?", "cluster.local/ns/x/sa/aa", false),
            // Without operators the suffix stays a suffix.
            ("*/sa/a", "cluster.local/ns/x/sa/a", true),
        ])
    func principals(pattern: String, principal: String, matches: Bool) {
        Self.expectEveryForm("principals", key: "source.principal", value: pattern, principal: principal, matches: matches)
    }

    /// An ALLOW on `field`, a DENY on its `not` form and an ALLOW on the `when` `key`, each holding
    /// `value`, decide a request from `principal` as `matches` says (both evaluation paths).
    static func expectEveryForm(_ field: String, key: String, value: String, principal: String, matches: Bool) {
        let negated = "not" + field.prefix(1).uppercased() + field.dropFirst()
        let request = Fixture.http(principal: principal)
        let allow = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {\(field): [\"\(value)\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(allow, request) == (matches ? .allow : .deny), "\(field) \(value) \(principal)")
        let deny = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - from: [{source: {\(negated): [\"\(value)\"]}}]"))
        #expect(IstioValueSemanticsTests.decide(deny, request) == (matches ? .allow : .deny), "\(negated) \(value) \(principal)")
        let condition = Fixture.engine(Fixture.policy("p", rules: "  - when: [{key: \(key), values: [\"\(value)\"]}]"))
        #expect(IstioValueSemanticsTests.decide(condition, request) == (matches ? .allow : .deny), "\(key) \(value) \(principal)")
    }

    @Test(
        "a namespace value's operators other than * are regex operators: . is any character, + repeats, | chooses",
        arguments: [
            // (value, principal, matches), as Python's re.fullmatch reads .*/ns/<value>/.* against spiffe://<principal>
            ("team.*", "cluster.local/ns/team-a/sa/x", true),
            // `.` may be the slash after `team`, and `.*` the service account.
            ("team.*", "cluster.local/ns/team/sa/x", true),
            ("team.*", "cluster.local/ns/tea/sa/x", false),
            ("team.*", "td/ns/team", false),
            ("*.prod", "cluster.local/ns/a-prod/sa/x", true),
            ("*.prod", "cluster.local/ns/prod/sa/x", false),
            ("a+", "cluster.local/ns/aaa/sa/x", true),
            ("a+", "cluster.local/ns/b/sa/x", false),
            ("(a|b)", "cluster.local/ns/b/sa/x", true),
            ("(a|b)", "cluster.local/ns/c/sa/x", false),
            ("ns.1", "cluster.local/ns/ns-1/sa/x", true),
            ("ns.1", "cluster.local/ns/ns1/sa/x", false),
        ])
    func namespaces(value: String, principal: String, matches: Bool) {
        Self.expectEveryForm("namespaces", key: "source.namespace", value: value, principal: principal, matches: matches)
    }

    @Test(
        "a service account's regex operators are operators, as generator.go's serviceAccountRegex leaves them unescaped",
        arguments: [
            // (value, principal, matches), as Python's re.fullmatch reads spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?
            ("ns1/a+", "cluster.local/ns/ns1/sa/aa", true),
            ("ns1/a+", "cluster.local/ns/ns1/sa/b", false),
            ("ns1/(a|b)", "cluster.local/ns/ns1/sa/b", true),
            ("ns1/[ab]", "cluster.local/ns/ns1/sa/a", true),
            ("ns1/[ab]", "cluster.local/ns/ns1/sa/c", false),
            ("ns1/a?", "cluster.local/ns/ns1/sa/", true),
            ("b+/a", "cluster.local/ns/bb/sa/a", true),
            ("ns1/a+", "cluster.local/ns/ns1/x/sa/aa/extra", true),
        ])
    func serviceAccounts(value: String, principal: String, matches: Bool) {
        Self.expectEveryForm("serviceAccounts", key: "source.serviceAccount", value: value, principal: principal, matches: matches)
    }

    @Test("service accounts with regex operators are warned of, and refused when RE2 cannot compile them")
    func serviceAccountValidation() {
        let found = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - from: [{source: {serviceAccounts: [\"ns1/a+\", \"b(\", ok]}}]"))
        #expect(found.contains { $0.code == .principalRegex && $0.field.hasSuffix("serviceAccounts[0]") }, "\(found)")
        #expect(found.contains { $0.code == .badPrincipalRegex && $0.severity == .error && $0.field.hasSuffix("serviceAccounts[1]") }, "\(found)")
        #expect(!found.contains { $0.field.hasSuffix("serviceAccounts[2]") }, "\(found)")
    }

    @Test("namespace values with regex operators are warned of, and refused when RE2 cannot compile them; a * inside one is no literal")
    func namespaceValidation() {
        let warned = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - from: [{source: {namespaces: [\"team.*\", \"a+\"]}}]"))
        #expect(warned.filter { $0.code == .principalRegex }.count == 2, "\(warned)")
        #expect(warned.contains { $0.message.contains(".*/ns/team..*/.*") }, "\(warned)")
        let refused = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - when: [{key: source.namespace, values: [\"x(\"]}]"))
        #expect(refused.contains { $0.code == .badPrincipalRegex && $0.severity == .error && $0.field.hasSuffix("values[0]") }, "\(refused)")
        let inner = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - when: [{key: source.namespace, values: [\"a*b\"]}]"))
        #expect(!inner.contains { $0.code == .literalWildcard || $0.code == .principalRegex }, "\(inner)")
        #expect(!NamespacePattern("x(").matches(principal: "cluster.local/ns/x(/sa/a"))
    }

    @Test("a suffix RE2 would refuse is an error of its own and matches nothing; one it compiles is a warning that names the expression")
    func validation() {
        func found(_ values: String, field: String = "principals") -> [Diagnostic] {
            SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - from: [{source: {\(field): \(values)}}]"))
        }
        for bad in ["\"*/ns/(x\"", "\"*/sa/(?=x)\"", "\"*/sa/(a)\\\\1\"", "\"*/sa/a*+\""] {
            let diagnostics = found("[\(bad)]")
            #expect(diagnostics.contains { $0.code == .badPrincipalRegex && $0.severity == .error && $0.field.hasSuffix("principals[0]") }, "\(bad): \(diagnostics)")
        }
        let warned = found("[\"*/ns/ns1/*\", \"*a*b\", \"*/sa/(a|b)\"]", field: "notPrincipals")
        #expect(warned.filter { $0.code == .principalRegex && $0.severity == .warning }.count == 3, "\(warned)")
        #expect(warned.contains { $0.message.contains("spiffe://.*/ns/ns1/*") && $0.message.contains("repeats") })
        // The RP062 warning ("matched literally") would be wrong for them.
        #expect(!warned.contains { $0.code == .literalWildcard }, "\(warned)")
        let condition = SchemaParityTests.diagnostics(
            Fixture.policy("p", rules: "  - when: [{key: source.principal, values: [\"*/sa/x+\"]}]"))
        #expect(condition.contains { $0.code == .principalRegex && $0.field.hasSuffix("when[0].values[0]") }, "\(condition)")
        for sound in ["\"*/sa/a\"", "\"*.local/ns/a/sa/b\"", "\"cluster.local/ns/a/*\"", "\"*\""] {
            #expect(!found("[\(sound)]").contains { $0.code == .principalRegex || $0.code == .badPrincipalRegex }, "\(sound)")
        }
        #expect(!StringMatcher.principal("*/ns/(x").matches("td/ns/(x"))
    }

    @Test(
        "RE2's reading, not Swift's: a { that starts no repetition is literal, \\pL is a class, \\C any byte, ] first in a class literal",
        arguments: [
            // (pattern as written in single-quoted YAML, principal, matches)
            ("*/ns/ns1/sa/a{,1}", "td/ns/ns1/sa/a", false),
            ("*/ns/ns1/sa/a{,1}", "td/ns/ns1/sa/a{,1}", true),
            ("*/ns/ns1/sa/a{2}", "td/ns/ns1/sa/aa", true),
            (#"*/sa/\pL"#, "td/ns/x/sa/b", true),
            (#"*/sa/\pL"#, "td/ns/x/sa/1", false),
            (#"*/sa/\C"#, "td/ns/x/sa/b", true),
            ("*/sa/[]a]", "td/ns/x/sa/a", true),
            ("*/sa/[]a]", "td/ns/x/sa/b", false),
            ("*/sa/(?i)A", "td/ns/x/sa/a", true),
            (#"*/sa/\p{Lu}"#, "td/ns/x/sa/A", true),
            (#"*/sa/\p{^Lu}"#, "td/ns/x/sa/A", false),
            (#"*/sa/\x{41}"#, "td/ns/x/sa/A", true),
            (#"*/sa/\x41"#, "td/ns/x/sa/A", true),
        ])
    func re2Syntax(pattern: String, principal: String, matches: Bool) {
        let allow = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {principals: ['\(pattern)']}}]"))
        #expect(IstioValueSemanticsTests.decide(allow, Fixture.http(principal: principal)) == (matches ? .allow : .deny))
    }

    @Test("what RE2 refuses is refused: \\Z, counts above 1000, unknown flags, \\x without two hex digits, possessive forms")
    func re2Refusals() {
        for pattern in [
            #"*/sa/\Z"#, "*/sa/a{1001}", "*/sa/(?x)a", #"*/sa/\x4"#, "*/sa/a{1,2}+", "*/sa/a{3,1}", "*/sa/(?<=a)b", "**", "*/sa/a+*",
            "*/sa/a*{2}",
        ] {
            let found = SchemaParityTests.diagnostics(Fixture.policy("p", rules: "  - from: [{source: {principals: ['\(pattern)']}}]"))
            #expect(found.contains { $0.code == .badPrincipalRegex && $0.severity == .error }, "\(pattern): \(found)")
        }
        #expect(PatternRegex.problem(PatternRegex.expression(suffix: "/sa/a{1000}")) == nil)
        #expect(PatternRegex.problem(PatternRegex.expression(suffix: "/sa/a*?b")) == nil, "a lazy repetition is one")
    }

    @Test("explain names the regular expression a principal was read as")
    func explain() {
        let engine = Fixture.engine(Fixture.policy("p", rules: "  - from: [{source: {principals: [\"*/ns/ns1/*\"]}}]"))
        let (decision, trace) = engine.snapshot.explain(Fixture.http(principal: "td/ns/ns1/sa/a"))
        #expect(decision.decision == .deny)
        let messages = trace.steps.flatMap { $0.rules.flatMap { $0.failures.map(\.message) } }
        #expect(messages.contains { $0.contains("regular expression spiffe://.*/ns/ns1/*") }, "\(messages)")
    }
}
