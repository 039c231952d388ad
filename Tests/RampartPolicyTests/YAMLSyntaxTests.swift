@testable import RampartPolicy
import Testing

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

    @Test("aliases that multiply a document past a million values are refused before decoding; fewer are read")
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
        let bomb = PolicyLoader.load(yaml: document(width: 120), file: "bomb.yaml")  // 120³ > 1,000,000
        #expect(bomb.resources.isEmpty)
        #expect(bomb.diagnostics.contains { $0.code == .unreadable && $0.message.contains("billion laughs") }, "\(bomb.diagnostics.prefix(2))")
        let small = PolicyLoader.load(yaml: document(width: 20), file: "small.yaml")
        #expect(!small.hasErrors && small.resources.count == 1, "\(small.diagnostics.prefix(2))")
    }
}
