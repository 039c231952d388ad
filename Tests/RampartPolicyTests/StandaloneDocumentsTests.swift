import Foundation
import Testing

@testable import RampartPolicy

/// The documents `apply` stores for resources without one of their own: a List's items, and
/// documents `-n` gives a namespace.
@Suite("Standalone documents")
struct StandaloneDocumentsTests {
    static let list = """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: security.istio.io/v1
          kind: AuthorizationPolicy
          metadata: {name: a, namespace: shop, generation: 2, labels: {"8080": "true"}}
          spec:
            rules:
            - to: [{operation: {ports: ["8080"], paths: ["*.json", "/x: y", "null", "1.5"], methods: [GET]}}]
              when: [{key: "request.headers[x-a]", values: ["true", "~", "0x10", ""]}]
        - {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "b"}, "spec": {"mtls": {"mode": "STRICT"}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}, "selector": {"matchLabels": {"app": "x"}}}}
        """

    /// The parsed values, with types: a string that became a number would differ.
    static func plain(_ text: String) throws -> String {
        let value = try PlainYAML.parse(text)
        let data = try JSONSerialization.data(withJSONObject: value ?? NSNull(), options: [.sortedKeys, .fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }

    @Test("a List's items are rendered on their own as block YAML with every value and its type kept")
    func listItems() throws {
        let entries = StandaloneDocuments.entries(yaml: Self.list, file: "l.yaml", namespace: nil)
        #expect(entries.map { "\($0.id)" } == ["AuthorizationPolicy shop/a", "PeerAuthentication default/b"])
        #expect(entries.map(\.line) == [4, 11])
        let items = try #require(try PlainYAML.parse(Self.list) as? [String: Any])["items"] as? [Any]
        for (entry, item) in zip(entries, items ?? []) {
            let rendered = try #require(entry.rendered)
            #expect(!rendered.contains("{\""), "\(rendered)")
            let original = try JSONSerialization.data(withJSONObject: item, options: [.sortedKeys])
            #expect(try Self.plain(rendered) == String(decoding: original, as: UTF8.self), "\(rendered)")
            let alone = PolicyLoader.load(yaml: rendered)
            #expect(alone.resources.map(\.id) == [entry.id] && !alone.hasErrors, "\(alone.diagnostics)")
        }
    }

    @Test("-n writes the namespace into documents naming none; one naming its own is kept as written")
    func namespaceFilled() throws {
        let yaml = """
            # kept
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata:
              name: a
              namespace: null
            spec: {}
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: b, namespace: shop}
            spec: {}
            """
        let entries = StandaloneDocuments.entries(yaml: yaml, file: "p.yaml", namespace: "web")
        #expect(entries.map { "\($0.id)" } == ["AuthorizationPolicy web/a", "AuthorizationPolicy shop/b"])
        #expect(entries.map(\.namespaceGiven) == [false, true])
        #expect(entries[1].rendered == nil)
        let rendered = try #require(entries[0].rendered)
        #expect(PolicyLoader.load(yaml: rendered).resources.map(\.id.namespace) == ["web"], "\(rendered)")
        // Without -n nothing is rendered: each document is stored as written.
        #expect(StandaloneDocuments.entries(yaml: yaml, file: "p.yaml", namespace: nil).allSatisfy { $0.rendered == nil })
        // A namespace that plain YAML would read as something else stays a string.
        let odd = StandaloneDocuments.entries(yaml: yaml, file: "p.yaml", namespace: "null")
        #expect(PolicyLoader.load(yaml: try #require(odd[0].rendered)).resources.map(\.id.namespace) == ["null"])
    }
}

@Suite("documents as get -o yaml prints them")
struct PrintedDocumentsTests {
    @Test("a document applied as JSON is printed as block YAML with the same content; YAML as written stays as written")
    func jsonAsYAML() throws {
        let json = #"{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": "j", "namespace": "shop"}, "spec": {"rules": [{"to": [{"operation": {"ports": ["8080"]}}]}]}}"# + "\n"
        let printed = StandaloneDocuments.withNamespace(json, namespace: "shop")
        #expect(!printed.hasPrefix("{") && printed.contains("kind: AuthorizationPolicy\n") && printed.contains("'8080'"), "\(printed)")
        // The same resource reads back: name, namespace and rules.
        func policy(_ text: String) throws -> AuthorizationPolicy {
            let loaded = PolicyLoader.load(yaml: text, file: "p.yaml")
            guard loaded.diagnostics.isEmpty, case .authorizationPolicy(let policy)? = loaded.resources.first else {
                throw CancellationError()
            }
            return policy
        }
        let (before, after) = (try policy(json), try policy(printed))
        #expect(after.metadata == before.metadata && after.rules == before.rules)
        let yaml = "# kept\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: y, namespace: shop}\nspec: {}\n"
        #expect(StandaloneDocuments.withNamespace(yaml, namespace: "shop") == yaml)
        // A YAML flow mapping is YAML as written, and stays so.
        let flow = "--- {apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: f, namespace: shop}, spec: {}}\n"
        #expect(StandaloneDocuments.withNamespace(flow, namespace: "shop") == flow)
        #expect(StandaloneDocuments.isJSON("# c\n---\n { \"a\": 1}") && !StandaloneDocuments.isJSON("{a: 1}"))
    }

    @Test("the store's creationTimestamp and generation go into the metadata as written, first, as kubectl orders them; the rest stays as written")
    func storeFields() throws {
        let created = "2026-11-30T10:00:00Z"
        func fields(_ text: String) throws -> [String: String] {
            let loaded = try #require(try PlainYAML.parse(text) as? [String: Any])
            let metadata = try #require(loaded["metadata"] as? [String: Any])
            return metadata.mapValues { "\($0)" }
        }
        // Block metadata: two lines above its first key, at its indentation; comments kept.
        let block = "# top\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n    name: p   # the name\n    namespace: shop\nspec:\n  mtls: {mode: STRICT}  # strict\n"
        let printedBlock = StandaloneDocuments.withStoreFields(block, creationTimestamp: created, generation: 3)
        #expect(printedBlock == block.replacingOccurrences(
            of: "metadata:\n", with: "metadata:\n    creationTimestamp: \"\(created)\"\n    generation: 3\n"), "\(printedBlock)")
        #expect(try fields(printedBlock) == ["creationTimestamp": created, "generation": "3", "name": "p", "namespace": "shop"])
        // Flow metadata, and a whole document in flow style: just after the brace.
        let flow = "--- {apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: f, namespace: shop}, spec: {}}\n"
        #expect(StandaloneDocuments.withStoreFields(flow, creationTimestamp: created, generation: 1)
            == flow.replacingOccurrences(of: "metadata: {", with: "metadata: {creationTimestamp: \"\(created)\", generation: 1, "))
        // CRLF line ends stay CRLF.
        let crlf = "apiVersion: security.istio.io/v1\r\nkind: AuthorizationPolicy\r\nmetadata:\r\n  name: c\r\n  namespace: shop\r\nspec: {}\r\n"
        let printedCRLF = StandaloneDocuments.withStoreFields(crlf, creationTimestamp: created, generation: 2)
        #expect(printedCRLF.contains("metadata:\r\n  creationTimestamp: \"\(created)\"\r\n  generation: 2\r\n  name: c\r\n"), "\(printedCRLF)")
        // A creationTimestamp the document gives is replaced by the store's, which orders competing
        // PeerAuthentications; the generation is the store's.
        let dated = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: d\n  namespace: shop\n  creationTimestamp: \"2020-01-01T00:00:00Z\"\nspec: {}\n"
        let printedDated = StandaloneDocuments.withStoreFields(dated, creationTimestamp: created, generation: 4)
        #expect(try fields(printedDated)["creationTimestamp"] == created && fields(printedDated)["generation"] == "4", "\(printedDated)")
        // One that is already the store's is left as written.
        let current = dated.replacingOccurrences(of: "2020-01-01T00:00:00Z", with: created).replacingOccurrences(of: "  name: d\n", with: "  generation: 4\n  name: d\n")
        #expect(StandaloneDocuments.withStoreFields(current, creationTimestamp: created, generation: 4) == current)
        // Another server's generation is replaced: the document is rendered anew with the store's.
        let exported = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: e, namespace: shop, generation: 9}\nspec: {}\n"
        #expect(try fields(StandaloneDocuments.withStoreFields(exported, creationTimestamp: created, generation: 1))
            == ["creationTimestamp": created, "generation": "1", "name": "e", "namespace": "shop"])
        // Both already as the store has them: unchanged.
        #expect(StandaloneDocuments.withStoreFields(printedDated, creationTimestamp: created, generation: 4) == printedDated)
        // Every printed document loads back as the same resource, its creation time included.
        for text in [printedBlock, printedCRLF, printedDated] {
            let loaded = PolicyLoader.load(yaml: text, file: "p.yaml")
            #expect(loaded.diagnostics.filter { $0.severity == .error }.isEmpty, "\(loaded.diagnostics)")
            #expect(loaded.resources.count == 1)
        }
    }
}
