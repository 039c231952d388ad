import Foundation
@testable import RampartPolicy
import Testing

@Suite("analyzer warnings")
struct AnalyzerTests {
    static func peer(_ name: String, _ namespace: String, selector: String? = nil, mode: String = "STRICT") -> String {
        """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
        \(selector.map { "  selector: {matchLabels: {\($0)}}\n" } ?? "")  mtls: {mode: \(mode)}
        """
    }

    static func analyze(_ documents: [String], workloads: [Workload]? = nil) -> [Diagnostic] {
        PolicyAnalyzer.analyze(PolicyLoader.load(yaml: documents.joined(separator: "\n---\n"), file: "mesh.yaml").resources, workloads: workloads)
    }

    @Test("two namespace-wide PeerAuthentications in one namespace: the second is reported as ignored, naming the first")
    func competingNamespaceWide() throws {
        // Loaded second, but first by name: `a` is the one in force, as in Istio.
        let diagnostics = Self.analyze([Self.peer("b", "shop", mode: "PERMISSIVE"), Self.peer("a", "shop"), Self.peer("c", "pay")])
        let conflicts = diagnostics.filter { $0.code == .conflictingPeerAuthentication }
        #expect(conflicts.count == 1)
        let conflict = try #require(conflicts.first)
        #expect(conflict.severity == .warning)
        #expect(conflict.resource?.name == "b")
        #expect(conflict.message.contains("shop/a"))
        #expect(conflict.line > 1)
    }

    @Test("two PeerAuthentications selecting the same known workload conflict; different workloads do not")
    func competingWorkloadPolicies() {
        let documents = [
            Self.peer("cart-1", "shop", selector: "app: cart"), Self.peer("cart-2", "shop", selector: "tier: web"),
            Self.peer("orders", "shop", selector: "app: orders"),
        ]
        let workloads = [Workload(namespace: "shop", labels: ["app": "cart", "tier": "web"]), Workload(namespace: "shop", labels: ["app": "orders"])]
        let conflicts = Self.analyze(documents, workloads: workloads).filter { $0.code == .conflictingPeerAuthentication }
        #expect(conflicts.map { $0.resource?.name } == ["cart-2"])
        #expect(Self.analyze(documents).filter { $0.code == .conflictingPeerAuthentication }.isEmpty)
    }

    @Test(
        "a DENY rule whose HTTP conditions drop out on TCP is warned about; one limited by ports or TCP sources is not",
        arguments: [
            // (rule, warned)
            ("{to: [{operation: {paths: [/admin]}}]}", true),
            ("{from: [{source: {principals: ['*']}}], to: [{operation: {paths: [/admin]}}]}", true),
            ("{from: [{source: {requestPrincipals: ['*']}}]}", true),
            ("{when: [{key: 'request.headers[x-a]', values: ['1']}]}", true),
            ("{to: [{operation: {paths: [/admin], ports: ['8080']}}]}", false),
            ("{from: [{source: {principals: ['*']}}]}", false),
            ("{from: [{source: {namespaces: [ns2]}}], when: [{key: 'request.headers[x-a]', values: ['1']}]}", false),
        ])
    func denyWithoutPorts(rule: String, warned: Bool) {
        let policy = Fixture.policy("p", action: "DENY", rules: "  - \(rule)")
        let warnings = Self.analyze([policy]).filter { $0.code == .denyAllOnTCP }
        #expect(warnings.isEmpty == !warned, "\(rule): \(warnings.map(\.description))")
        #expect(warnings.allSatisfy { $0.severity == .warning && $0.field.hasPrefix("spec.rules[0]") && !$0.fix.isEmpty })
    }

    @Test("an invalid resource name gets a fix that is itself a valid name")
    func nameFix() throws {
        for (name, suggestion) in [("Bad_Name", "bad-name"), ("-Web.API_", "web.api"), ("a b", "a-b")] {
            let loaded = PolicyLoader.load(
                yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: \"\(name)\", namespace: shop}\nspec: {}\n",
                file: "p.yaml")
            let diagnostics = loaded.diagnostics + PolicyAnalyzer.validate(loaded.resources)
            let diagnostic = try #require(diagnostics.first { $0.field == "metadata.name" }, "\(name)")
            #expect(diagnostic.fix.hasSuffix("for example \(suggestion)"), "\(diagnostic.fix)")
        }
        #expect(CommonChecks.suggestedName("___") == nil)
    }

    @Test("a resource defined twice is an error at the second definition; a file given twice is read once")
    func duplicates() throws {
        let policy = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: dup, namespace: shop}\nspec: {action: DENY, rules: [{}]}\n"
        let diagnostics = Self.analyze([policy, policy.replacingOccurrences(of: "DENY", with: "ALLOW")])
        let duplicate = try #require(diagnostics.first { $0.code == .duplicateResource })
        #expect(duplicate.severity == .error && duplicate.line > 5, "\(duplicate)")
        #expect(duplicate.message.contains("mesh.yaml:1"))

        let folder = NSTemporaryDirectory() + "rampart-dup-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try policy.write(toFile: folder + "/a.yaml", atomically: true, encoding: .utf8)
        let twice = PolicyEngine.analyze(paths: [folder + "/a.yaml", folder + "/./a.yaml", folder])
        #expect(twice.isEmpty, "\(twice)")
        #expect(PolicyLoader.load(paths: [folder, folder + "/a.yaml"]).resources.count == 1)
    }
}
