import RampartPolicy
import Testing

@Suite("loading and validation")
struct LoadingTests {
    @Test("reports an unknown field with file, line, resource and field path")
    func unknownField() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: ns1}
            spec:
              rules:
              - to:
                - operation:
                    method: [GET]
            """
        let result = PolicyLoader.load(yaml: yaml, file: "p.yaml")
        let diagnostic = try #require(result.diagnostics.first)
        #expect(diagnostic.code == .unknownField)
        #expect(diagnostic.file == "p.yaml" && diagnostic.line == 8)
        #expect(diagnostic.field == "spec.rules[0].to[0].operation.method")
        #expect(diagnostic.resource == ResourceID(kind: .authorizationPolicy, namespace: "ns1", name: "p"))
        #expect(diagnostic.description.hasPrefix("p.yaml:8: error RP004: AuthorizationPolicy ns1/p spec.rules[0].to[0].operation.method:"))
    }

    @Test("reports a wrong type at its line")
    func wrongType() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p}
            spec:
              rules:
              - to: [{operation: {ports: [8080]}}]
            """
        let diagnostic = try #require(PolicyLoader.load(yaml: yaml, file: "p.yaml").diagnostics.first)
        #expect(diagnostic.code == .wrongType && diagnostic.line == 6)
        #expect(diagnostic.field == "spec.rules[0].to[0].operation.ports[0]")
        #expect(diagnostic.resource?.namespace == "default")
    }

    @Test("rejects an unknown kind or apiVersion")
    func unknownKind() {
        let result = PolicyLoader.load(yaml: "apiVersion: security.istio.io/v2\nkind: AuthorizationPolicy\nmetadata: {name: p}\n---\napiVersion: security.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n", file: "k.yaml")
        #expect(result.resources.isEmpty)
        #expect(result.diagnostics.map(\.code) == [.unknownKind, .unknownKind])
        // Each at the line of the field at fault: the first document's apiVersion, the second's kind.
        #expect(result.diagnostics.map(\.line) == [1, 6])
    }

    @Test("validation points at the offending field's line")
    func validationLine() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: ns1}
            spec:
              rules:
              - from:
                - source:
                    ipBlocks: ["1.2.3.4", "ip1"]
                to:
                - operation:
                    ports:
                    - "80"
                    - "http"
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "v.yaml")
        let diagnostics = PolicyAnalyzer.validate(loaded.resources)
        let diagnostic = try #require(diagnostics.first)
        #expect(diagnostic.code == .badIP && diagnostic.line == 8)
        #expect(diagnostic.field == "spec.rules[0].from[0].source.ipBlocks[1]")
        // A value of a block list is found at its own line, with its index.
        let port = try #require(diagnostics.first { $0.code == .badPort })
        #expect(port.field == "spec.rules[0].to[0].operation.ports[1]" && port.line == 13, "\(port)")
    }

    @Test("a field whose value is a block mapping is reported at its key's line")
    func keyLines() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: p, namespace: ns1}
            spec:
              selector:
                matchLabels: {app: a}
              portLevelMtls:
                70000:
                  mode: STRICT
            """
        let diagnostics = PolicyAnalyzer.validate(PolicyLoader.load(yaml: yaml, file: "k.yaml").resources)
        let port = try #require(diagnostics.first { $0.field.contains("portLevelMtls") })
        #expect(port.line == 8, "\(diagnostics)")
    }

    @Test("warns when a selector matches no known workload")
    func selectsNothing() {
        let loaded = PolicyLoader.load(
            yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: ns1}\nspec:\n  selector: {matchLabels: {app: ghost}}\n")
        let diagnostics = PolicyAnalyzer.analyze(loaded.resources, workloads: [Workload(namespace: "ns1", labels: ["app": "b"])])
        #expect(diagnostics.map(\.code) == [.selectsNothing])
        #expect(diagnostics.first?.severity == .warning)
    }

    @Test("a key written twice in one mapping is reported at its second line, naming the first")
    func duplicateKey() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: ns1}
            spec:
              action: DENY
              action: ALLOW
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "d.yaml")
        let diagnostic = try #require(loaded.diagnostics.first)
        #expect(diagnostic.code == .unreadable && diagnostic.line == 6, "\(diagnostic)")
        #expect(diagnostic.message.contains("\"action\"") && diagnostic.message.contains("line 5"), "\(diagnostic.message)")
        #expect(!diagnostic.message.contains("Context"))
    }

    @Test("a metadata error names its resource, and a port key that is not a number is one error, not also 'no port'")
    func metadataAndPortKeyErrors() {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: web, namespace: shop, creationTimestamp: yesterday}
            spec:
              selector: {matchLabels: {app: web}}
              portLevelMtls: {abc: {mode: DISABLE}}
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "p.yaml")
        let all = loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)
        let timestamp = all.first { $0.field == "metadata.creationTimestamp" }
        #expect(timestamp?.resource?.name == "web" && timestamp?.resource?.namespace == "shop", "\(all)")
        #expect(all.filter { $0.field.hasPrefix("spec.portLevelMtls") }.map(\.code) == [.badPort], "\(all)")
    }

    @Test("a port written twice in portLevelMtls, as a number and as text, is a warning (RP073); the resource is kept")
    func duplicatePortKey() {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: w, namespace: shop}
            spec:
              selector: {matchLabels: {app: w}}
              portLevelMtls:
                8080: {mode: DISABLE}
                "8080": {mode: STRICT}
                9090: {mode: PERMISSIVE}
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "p.yaml")
        #expect(loaded.resources.count == 1)
        #expect(loaded.diagnostics.map(\.code) == [.duplicatePort], "\(loaded.diagnostics)")
        #expect(loaded.diagnostics.first?.severity == .warning && loaded.diagnostics.first?.line == 8)
    }
}
