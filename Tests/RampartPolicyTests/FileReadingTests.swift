import Foundation
import RampartIdentity
import Testing

@testable import RampartPolicy

/// How files and folders are read as kubectl users write them: Windows line ends, a byte-order
/// mark, JSON files, hidden folders, null metadata, other kinds mixed in, Kubernetes' name rules.
@Suite("Reading files as kubectl does")
struct FileReadingTests {
    static func policy(_ name: String, namespace: String = "shop") -> String {
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: \(name)\n  namespace: \(namespace)\nspec:\n  action: DENY\n  rules:\n  - to: [{operation: {paths: [\"/admin\"]}}]\n"
    }

    func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-reading-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("a file with CRLF line ends and a byte-order mark reads as the same documents on the same lines")
    func windowsFiles() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = Self.policy("one") + "---\n" + Self.policy("two")
        let plain = directory.appendingPathComponent("plain.yaml")
        let windows = directory.appendingPathComponent("windows.yaml")
        try Data(text.utf8).write(to: plain)
        try Data([0xEF, 0xBB, 0xBF] + Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)).write(to: windows)
        let expected = PolicyLoader.load(paths: [plain.path])
        let loaded = PolicyLoader.load(paths: [windows.path])
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        #expect(loaded.resources.map(\.id) == expected.resources.map(\.id))
        #expect(loaded.resources.map(\.location.line) == expected.resources.map(\.location.line))
        let read = try #require(PolicyLoader.text(ofFile: windows.path))
        #expect(!read.contains("\r") && !read.hasPrefix("\u{FEFF}"))
    }

    @Test("folders are searched for .yaml, .yml and .json files; hidden files and folders are left out")
    func folderSearch() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(at: directory) }
        let hidden = directory.appendingPathComponent(".github/workflows")
        try FileManager.default.createDirectory(at: hidden, withIntermediateDirectories: true)
        try Data("on: push\njobs: {}\n".utf8).write(to: hidden.appendingPathComponent("ci.yml"))
        try Data(Self.policy("hidden").utf8).write(to: directory.appendingPathComponent(".draft.yaml"))
        try Data(Self.policy("a").utf8).write(to: directory.appendingPathComponent("a.yaml"))
        try Data(Self.policy("b").utf8).write(to: directory.appendingPathComponent("b.yml"))
        let json = #"{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": "c", "namespace": "shop"}, "spec": {}}"#
        try Data(json.utf8).write(to: directory.appendingPathComponent("c.json"))
        let loaded = PolicyLoader.load(paths: [directory.path])
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        #expect(loaded.resources.map(\.id.name) == ["a", "b", "c"])
    }

    @Test("a file that is not UTF-8, or not YAML, is reported at the line at fault, in one line of words")
    func placesOfBadFiles() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(at: directory) }
        let latin1 = directory.appendingPathComponent("latin1.yaml")
        try Data(Array("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a".utf8) + [0xE9] + Array(", namespace: ns}\n".utf8))
            .write(to: latin1)
        let bad = PolicyLoader.load(paths: [latin1.path]).diagnostics
        #expect(bad.map(\.line) == [3] && bad.first?.message.contains("not UTF-8") == true, "\(bad)")

        for (text, line, words) in [
            ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a\u{7}, namespace: ns}\nspec: {}\n", 3, "control characters"),
            ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: ns}\nspec: {action: *nope}\n", 4, "undefined alias"),
            ("a: " + String(repeating: "[", count: 2000) + "\n", 1, "nests too deeply"),
        ] {
            let found = PolicyLoader.load(yaml: text, file: "bad.yaml").diagnostics
            #expect(found.count == 1 && found[0].code == .unreadable && found[0].line == line, "\(found)")
            let message = found.first?.message ?? ""
            #expect(message.contains(words) && !message.contains("\n") && !message.contains("\u{7}") && !message.contains("yaml_"), "\(message)")
        }
    }

    @Test("old Mac line ends (a lone CR) read as line ends, on the same lines as LF")
    func carriageReturns() throws {
        let text = "# exported\n" + Self.policy("one") + "---\n" + Self.policy("two")
        let crOnly = try #require(PolicyLoader.text(of: Data(text.replacingOccurrences(of: "\n", with: "\r").utf8)))
        #expect(crOnly == text)
    }

    @Test("a symbolic link to nothing, a folder named like a file and an unreadable device are each reported for what they are")
    func fileSystemOddities() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(Self.policy("a").utf8).write(to: directory.appendingPathComponent("a.yaml"))
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("gone.yaml").path, withDestinationPath: directory.appendingPathComponent("missing.yaml").path)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("more.yaml"), withIntermediateDirectories: true)
        try Data(Self.policy("b").utf8).write(to: directory.appendingPathComponent("more.yaml/b.yaml"))
        let loaded = PolicyLoader.load(paths: [directory.path])
        #expect(loaded.resources.map(\.id.name) == ["a", "b"])
        #expect(loaded.diagnostics.map(\.message) == ["the file is a symbolic link to nothing (its target is missing, or links loop)"], "\(loaded.diagnostics)")
        #expect(loaded.diagnostics.first?.file.hasSuffix("gone.yaml") == true)
        // An empty device reads as no documents; one that fails to read is an I/O error.
        #expect(PolicyLoader.load(paths: ["/dev/null"]).diagnostics.isEmpty)
        let unreadable = PolicyLoader.load(paths: ["/proc/self/mem"]).diagnostics
        #expect(unreadable.map(\.code) == [.unreadable] && unreadable.first?.message.contains("cannot be read") == true, "\(unreadable)")
    }

    @Test("control and bidirectional characters from a file are escaped when a finding is printed")
    func escapedOutput() {
        let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: \"a\\e[2J\\u202Eb\", namespace: ns}\nspec: {}\n"
        let loaded = PolicyLoader.load(yaml: yaml, file: "e.yaml")
        let printed = (loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)).map(\.description).joined()
        #expect(!printed.isEmpty && !printed.contains("\u{1B}") && !printed.contains("\u{202E}") && printed.contains("\\u{1B}"), "\(printed)")
    }

    @Test("null metadata fields are not set, as in Kubernetes; selfLink from old exports is accepted")
    func nullMetadata() {
        let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: null\n  labels:\n  annotations: ~\n  selfLink: /apis/x\nspec: {}\n"
        let loaded = PolicyLoader.load(yaml: yaml, file: "m.yaml")
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        #expect(loaded.resources.first?.id.namespace == "default")
        guard case .authorizationPolicy(let policy)? = loaded.resources.first else {
            Issue.record("no AuthorizationPolicy")
            return
        }
        #expect(!policy.metadata.namespaceGiven)
    }

    @Test(
        "a document that is not a supported resource gives one finding, at the field to fix",
        arguments: [
            ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1}\n", "kind", "not a security policy"),
            ("apiVersion: security.istio.io/v1\nkind: AuthorisationPolicy\nmetadata: {name: d}\nspec: {}\n", "kind", "did you mean kind: AuthorizationPolicy"),
            ("apiVersion: security.istio.io/v2\nkind: PeerAuthentication\nmetadata: {name: d}\nspec: {}\n", "apiVersion", "security.istio.io/v1"),
            ("kind: PeerAuthentication\nmetadata: {name: d}\n", "apiVersion", "set apiVersion"),
        ])
    func otherKinds(yaml: String, field: String, words: String) {
        let loaded = PolicyLoader.load(yaml: yaml, file: "k.yaml")
        #expect(loaded.resources.isEmpty)
        #expect(loaded.diagnostics.count == 1, "\(loaded.diagnostics)")
        #expect(loaded.diagnostics.first?.code == .unknownKind)
        #expect(loaded.diagnostics.first?.field == field)
        let text = loaded.diagnostics.first.map { $0.message + " " + $0.fix } ?? ""
        #expect(text.contains(words), "\(text)")
        // In --json every key is there: the resource is null for a kind Rampart does not read, and
        // named for a known kind in a version it does not read.
        #expect((loaded.diagnostics.first?.jsonObject["resource"] is NSNull) == (field == "kind"), "\(loaded.diagnostics)")
    }

    @Test("an empty namespace is no namespace and the deletion fields of a resource being deleted are metadata, as kubectl reads them")
    func kubectlMetadata() {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: a, namespace: "", deletionTimestamp: "2024-01-01T00:00:00Z", deletionGracePeriodSeconds: 0}
            spec: {}
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "k.yaml")
        #expect(!loaded.hasErrors, "\(loaded.diagnostics)")
        #expect(loaded.resources.first?.id.namespace == "default")
    }

    @Test("a List, as kubectl get -o yaml prints it, is read as its items, at their own lines; one without items is an error")
    func lists() throws {
        let yaml = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: security.istio.io/v1
              kind: AuthorizationPolicy
              metadata: {name: a, namespace: shop, resourceVersion: "7", uid: 1f, generation: 2}
              spec: {}
              status: {}
            - apiVersion: security.istio.io/v1
              kind: PeerAuthentication
              metadata: {name: default, namespace: shop}
              spec: {mtls: {mode: STRICTT}}
            metadata: {resourceVersion: ""}
            """
        let loaded = PolicyLoader.load(yaml: yaml, file: "list.yaml")
        #expect(loaded.resources.map(\.id.name) == ["a", "default"])
        #expect(loaded.diagnostics.map(\.line) == [12], "\(loaded.diagnostics)")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-list-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(PolicyLoader.load(paths: [file]).resources.count == 2)
        // Read into another namespace (apply -n), the item that names none goes there.
        let placed = PolicyLoader.load(paths: [file], defaultNamespace: "web")
        #expect(placed.resources.map(\.id.namespace) == ["shop", "shop"])
        let item = Self.policy("n").replacingOccurrences(of: "  namespace: shop\n", with: "").split(separator: "\n").joined(separator: "\n  ")
        try "apiVersion: v1\nkind: List\nitems:\n- \(item)\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(PolicyLoader.load(paths: [file]).resources.map(\.id.namespace) == ["default"])
        #expect(PolicyLoader.load(paths: [file], defaultNamespace: "web").resources.map(\.id.namespace) == ["web"])
        // A List with no items list is an error that says so.
        for broken in ["apiVersion: v1\nkind: List\n", "apiVersion: v1\nkind: List\nitems: {a: 1}\n"] {
            let refused = PolicyLoader.load(yaml: broken, file: "l.yaml")
            #expect(refused.resources.isEmpty)
            #expect(refused.diagnostics.map(\.code) == [.listWithoutItems] && refused.diagnostics.first?.field == "items", "\(refused.diagnostics)")
        }
    }

    @Test("names and namespaces follow Kubernetes' DNS-1123 rules: ASCII only, 253 characters for a name, 63 for a namespace")
    func dnsNames() {
        #expect(DNSName.isSubdomain(String(repeating: "a", count: 64)))
        #expect(DNSName.isSubdomain(String(repeating: "a", count: 120) + "." + String(repeating: "b", count: 132)))
        #expect(!DNSName.isSubdomain(String(repeating: "a", count: 254)))
        #expect(!DNSName.isLabel(String(repeating: "a", count: 64)))
        for bad in ["web٣", "ns½", "x²", "Web", "-a", "a-", "a_b", ""] {
            #expect(!DNSName.isLabel(bad) && !DNSName.isSubdomain(bad), "\(bad)")
        }
        let analyzed = PolicyEngine(yaml: Self.policy("web٣") + "---\n" + Self.policy("ok", namespace: "ns½"), file: "n.yaml")
        #expect(analyzed.diagnostics.filter { $0.code == .badMetadata }.map(\.field) == ["metadata.name", "metadata.namespace"])
    }

    @Test("a name of the wrong type is one error, and its text still names the resource; the quoting hint comes only where it helps")
    func wrongTypes() {
        let loaded = PolicyLoader.load(
            yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: 123, namespace: shop}\nspec: 5\n",
            file: "t.yaml")
        let engine = PolicyEngine(loaded: loaded)
        let errors = engine.diagnostics.filter { $0.severity == .error }
        #expect(errors.map(\.field) == ["metadata.name", "spec"], "\(errors)")
        #expect(errors.last?.resource?.name == "123")
        #expect(errors.first?.fix.contains("quote numbers") == true)
        #expect(errors.last?.fix.contains("quote") == false, "\(errors.last?.fix ?? "")")
    }

    @Test("analyze reports file by file in the order read, and by line within a file")
    func readingOrder() throws {
        let directory = try folder()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("p.yaml")
        // The validator reads methods (line 9) before paths (line 8).
        let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: ns1}\nspec:\n  rules:\n  - to:\n    - operation:\n        paths: [\"/{x}\"]\n        methods: [\"G*T\"]\n"
        let unsorted = PolicyAnalyzer.analyze(PolicyLoader.load(yaml: yaml, file: "p.yaml").resources).map(\.line)
        #expect(unsorted != unsorted.sorted(), "the case no longer tests the order: \(unsorted)")
        try Data(yaml.utf8).write(to: file)
        let lines = PolicyEngine.analyze(paths: [file.path]).map(\.line)
        #expect(lines.count >= 2 && lines == lines.sorted(), "\(lines)")
    }

    @Test("jwks_uri is another name of jwksUri, as Istio's CRD accepts it; both at once is an error")
    func jwksURIAlias() throws {
        func rule(_ fields: String) -> String {
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r, namespace: shop}\nspec:\n  jwtRules:\n  - {issuer: 'https://idp.example', \(fields)}\n"
        }
        let alias = PolicyLoader.load(yaml: rule("jwks_uri: 'https://idp.example/keys'"), file: "r.yaml")
        #expect(alias.diagnostics.isEmpty, "\(alias.diagnostics)")
        guard case .requestAuthentication(let loaded)? = alias.resources.first else {
            Issue.record("no RequestAuthentication")
            return
        }
        #expect(loaded.jwtRules.first?.jwksURI == "https://idp.example/keys")
        let both = PolicyLoader.load(yaml: rule("jwksUri: 'https://a.example/k', jwks_uri: 'https://b.example/k'"), file: "r.yaml")
        #expect(both.diagnostics.map(\.code) == [.badJWTRule])
    }

    @Test("a YAML syntax error names its line and column in words, without echoing a long line")
    func syntaxErrorMessage() {
        let long = String(repeating: "a", count: 50_000)
        let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: ns1, x: [\(long)\n"
        let loaded = PolicyLoader.load(yaml: yaml, file: "long.yaml")
        let error = loaded.diagnostics.first
        // The fault is found past the last line: it is placed on the last line, "at the end of the file".
        #expect(error?.code == .unreadable && error?.line == 3, "\(loaded.diagnostics)")
        #expect(error?.message.contains("at the end of the file") == true, "\(loaded.diagnostics)")
        #expect((error?.message.count ?? 0) < 400, "\(error?.message.count ?? 0) characters")
        #expect(error?.message.contains("column") == true)
        // A fault within the text keeps its line and column.
        let inside = PolicyLoader.load(yaml: "a: [1, 2\nb: 3\n", file: "inside.yaml").diagnostics.first
        #expect(inside?.line == 2 && inside?.message.contains("at line 2, column") == true, "\(String(describing: inside))")
    }
}
