@testable import RampartPolicy
import Testing
import Yams

@Suite("YAML syntax errors")
struct YAMLSyntaxTests {
    @Test("a line indented with a tab is named as such; other syntax errors are not blamed on tabs")
    func tabIndentation() throws {
        let tabbed = PolicyLoader.load(yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n\tname: x\n", file: "t.yaml")
        let error = try #require(tabbed.diagnostics.first { $0.severity == .error })
        #expect(error.line == 4 && error.message.contains("indented with a tab"), "\(error.message)")
        let unclosed = PolicyLoader.load(yaml: "apiVersion: security.istio.io/v1\nkind: [AuthorizationPolicy\n", file: "u.yaml")
        let other = try #require(unclosed.diagnostics.first { $0.severity == .error })
        #expect(!other.message.contains("tab"), "\(other.message)")
    }
}

@Suite("YAML scalars as kubectl reads them")
struct KubernetesScalarTests {
    static func policy(values: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: p, namespace: ns1}
        spec:
          rules:
          - when:
            - key: request.headers[x-window]
              values: [\(values)]
        """
    }

    @Test("a base-60 number (10:30) is a string, as go-yaml v2 reads it", arguments: ["10:30", "1:30.5", "190:20:30"])
    func sexagesimalIsText(value: String) throws {
        let loaded = PolicyLoader.load(yaml: Self.policy(values: value), file: "s.yaml")
        #expect(!loaded.hasErrors, "\(loaded.diagnostics)")
        let policy = try #require(loaded.resources.first)
        #expect("\(policy)".contains(value), "the value is kept as written")
    }

    @Test("y, Y, n and N are booleans, as go-yaml v2 reads them: refused where a string belongs", arguments: ["y", "Y", "n", "N", "yes", "off"])
    func shortBooleans(value: String) throws {
        let loaded = PolicyLoader.load(yaml: Self.policy(values: value), file: "b.yaml")
        let error = try #require(loaded.diagnostics.first { $0.severity == .error })
        #expect(error.code == .wrongType && error.message.contains("a boolean (\(value))"), "\(error.message)")
        #expect(error.fix.contains("quote"), "\(error.fix)")
        #expect(!PolicyLoader.load(yaml: Self.policy(values: "\"\(value)\""), file: "q.yaml").hasErrors, "quoted, it is a string")
    }

    @Test("numbers and words that are neither stay as Yams reads them", arguments: ["10", "abc", "1e3", "0x1F"])
    func unchanged(value: String) {
        let node = Node(value)
        #expect(KubernetesScalars.resolveTag(of: node) == Resolver.default.resolveTag(of: node))
    }
}

@Suite("YAML aliases and merge keys")
struct YAMLExpansionTests {
    @Test("merge keys are resolved as kubectl resolves them: the mapping's own keys win, then the earlier merged mapping")
    func mergeKeys() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: ns1}
            spec:
              action: ALLOW
              rules:
              - to:
                - operation: &get {methods: [GET], paths: ["/a"]}
              - to:
                - operation:
                    <<: *get
                    paths: ["/b"]
              - to:
                - operation:
                    <<: [{methods: [PUT]}, *get]
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "m.yaml")
        #expect(!loaded.hasErrors, "\(loaded.diagnostics)")
        let engine = PolicyEngine(loaded: loaded)
        func decision(_ method: String, _ path: String) -> Decision.Verdict {
            engine.snapshot.evaluate(Fixture.http(method: method, path: path)).decision
        }
        #expect(decision("GET", "/b") == .allow)  // rule 1: its own paths, the merged methods
        #expect(decision("PUT", "/a") == .allow)  // rule 2: PUT from the first merged mapping, the paths from *get
        #expect(decision("POST", "/a") == .deny)
        #expect(decision("GET", "/c") == .deny)
    }

    @Test("a merge key naming a scalar is reported as the unknown field it then is")
    func badMerge() {
        let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: ns1}\nspec:\n  <<: x\n"
        let loaded = PolicyLoader.load(yaml: yaml, file: "b.yaml")
        #expect(loaded.diagnostics.contains { $0.code == .unknownField && $0.field.hasSuffix("<<") }, "\(loaded.diagnostics)")
    }

    @Test("aliases that multiply a document past 100,000 values are refused before decoding; fewer are read")
    func aliasBomb() {
        func document(width: Int) -> String {
            let principals = (0..<width).map { "\"/p\($0)\"" }.joined(separator: ",")
            let sources = Array(repeating: "*s", count: width - 1).joined(separator: ",")
            let rules = Array(repeating: "*r", count: width - 1).joined(separator: ",")
            return """
                apiVersion: security.istio.io/v1
                kind: AuthorizationPolicy
                metadata: {name: a, namespace: ns1}
                spec:
                  action: DENY
                  rules: [&r {from: [&s {source: {principals: [\(principals)]}}, \(sources)]}, \(rules)]
                """
        }
        let bomb = PolicyLoader.load(yaml: document(width: 60), file: "bomb.yaml")  // 60³ > 100,000
        #expect(bomb.resources.isEmpty)
        #expect(bomb.diagnostics.contains { $0.code == .unreadable && $0.message.contains("billion laughs") }, "\(bomb.diagnostics.prefix(2))")
        let small = PolicyLoader.load(yaml: document(width: 20), file: "small.yaml")
        #expect(!small.hasErrors && small.resources.count == 1, "\(small.diagnostics.prefix(2))")
    }

    @Test("a few values that aliases multiply past 3 MiB of text are refused, as the API server refuses such a request")
    func aliasBytes() {
        let long = String(repeating: "p", count: 4000)
        let principals = (0..<30).map { "\"/\(long)\($0)\"" }.joined(separator: ",")
        let sources = Array(repeating: "*s", count: 29).joined(separator: ",")
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: a, namespace: ns1}
            spec:
              rules: [{from: [&s {source: {principals: [\(principals)]}}, \(sources)]}]
            """
        // 900 values of 4 KB: few values, 3.6 MB of text.
        let loaded = PolicyLoader.load(yaml: yaml, file: "wide.yaml")
        #expect(loaded.resources.isEmpty)
        #expect(loaded.diagnostics.contains { $0.code == .unreadable && $0.message.contains("MiB") }, "\(loaded.diagnostics.prefix(1))")
        let fewer = PolicyLoader.load(yaml: yaml.replacingOccurrences(of: sources, with: "*s"), file: "fewer.yaml")
        #expect(!fewer.hasErrors && fewer.resources.count == 1, "\(fewer.diagnostics.prefix(1))")
    }

    @Test("an alias to an anchor of an earlier document is refused at its document; one within the document is read")
    func crossDocumentAlias() throws {
        let first = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: first, namespace: shop}
            spec:
              rules: [{from: [{source: {principals: &ids ["cluster.local/ns/shop/sa/a"]}}]}]
            """
        let loaded = PolicyLoader.load(yaml: first + """

            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: second, namespace: shop}
            spec:
              rules: [{from: [{source: {principals: *ids}}]}]
            """, file: "two.yaml")
        let error = try #require(loaded.diagnostics.first { $0.severity == .error })
        #expect(error.code == .unreadable && error.line == 7 && error.message.contains("earlier document (at line 5)"), "\(error)")
        #expect(loaded.resources.map(\.id.name) == ["first"])
        let within = PolicyLoader.load(
            yaml: first.replacingOccurrences(of: "]}]}]", with: "]}]}, {from: [{source: {principals: *ids}}]}]"), file: "one.yaml")
        #expect(!within.hasErrors, "\(within.diagnostics)")
    }
}

@Suite("YAML tags")
struct YAMLTagTests {
    func load(_ spec: String) -> LoadResult {
        PolicyLoader.load(yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: ns1}\nspec:\n\(spec)", file: "t.yaml")
    }

    @Test("a standard tag that cannot hold its value is refused at its line, not read as null or as text")
    func mismatched() throws {
        for (spec, tag) in [
            ("  action: !!null DENY\n  rules: [{}]\n", "!!null"), ("  action: !!int DENY\n", "!!int"),
            ("  action: DENY\n  rules: [{to: [{operation: {methods: [!!bool GET]}}]}]\n", "!!bool"),
        ] {
            let loaded = load(spec)
            let error = try #require(loaded.diagnostics.first { $0.severity == .error }, "\(spec)")
            #expect(error.code == .unreadable && error.line >= 5 && error.message.contains("the tag \(tag) cannot hold"), "\(error)")
            #expect(loaded.resources.isEmpty)
        }
    }

    @Test("tags other than YAML's core types are refused; tags that fit their values are read as written")
    func supported() throws {
        for tag in ["!!binary", "!!timestamp", "!custom", "!!python/object:os.system"] {
            let loaded = load("  action: \(tag) DENY\n")
            let error = try #require(loaded.diagnostics.first { $0.severity == .error }, "\(tag)")
            #expect(error.code == .unreadable && error.line == 5 && error.message.contains("\(tag) is not supported"), "\(error)")
        }
        let set = load("  action: DENY\n  rules: !!set {a, b}\n")
        #expect(set.diagnostics.contains { $0.code == .unreadable && $0.message.contains("!!set") })
        let fitting = load("  action: !!str DENY\n  rules: !!seq\n  - to: !!seq [{operation: !!map {ports: [!!str 8080], paths: [\"/a\"]}}]\n")
        #expect(!fitting.hasErrors, "\(fitting.diagnostics)")
        guard case .authorizationPolicy(let policy)? = fitting.resources.first else {
            Issue.record("expected the policy")
            return
        }
        #expect(policy.action == .deny)
    }

    @Test("a request file's tag that cannot hold its value names the field and its line")
    func requestFile() {
        do {
            _ = try AuthzRequest(text: "protocol: HTTP\ndestination:\n  namespace: !!null ns1\n  labels: {app: b}\n")
            Issue.record("the tagged namespace was accepted")
        } catch {
            #expect(error.field == "destination.namespace" && error.line == 3 && error.reason.contains("!!null"), "\(error)")
        }
    }
}

@Suite("Findings about very long values")
struct LongValueTests {
    @Test("a megabyte-long kind is reported in a message of bounded length, and its near-miss search does no quadratic work")
    func longKind() throws {
        let kind = String(repeating: "A", count: 1_000_000)
        let loaded = PolicyLoader.load(yaml: "apiVersion: security.istio.io/v1\nkind: \(kind)\nmetadata: {name: a}\n", file: "k.yaml")
        let error = try #require(loaded.diagnostics.first { $0.severity == .error })
        #expect(error.code == .unknownKind && error.message.count < 1000 && error.message.contains("characters left out"))
        #expect(error.description.count < 2000)
        #expect(EditDistance.between(kind, "AuthorizationPolicy") > 3)
        #expect(EditDistance.between("AuthorizatonPolicy", "AuthorizationPolicy") == 1)
    }
}

