import Foundation
import Testing

/// Lists and `-n`, as kubectl's users bring them: what `kubectl get -o yaml` or `rampart get -o
/// json` printed is applied again, and documents without a namespace go where `-n` says.
@Suite("config commands: lists and namespaces")
struct ConfigListTests {
    @Test("what get -o json prints applies to another state as the same resources, and again as unchanged")
    func listRoundTrip() throws {
        let source = try CAProcess(label: "config-list-source")
        #expect(try rampart("apply", "-f", ConfigCommandTests.policies, "--state", source.state).succeeded)
        let exported = try rampart("get", "ap,pa,ra", "-A", "-o", "json", "--state", source.state)
        #expect(exported.succeeded, "\(exported.stderr)")
        let file = "\(source.directory)/export.json"
        try exported.stdout.write(toFile: file, atomically: true, encoding: .utf8)

        let target = try CAProcess(label: "config-list-target")
        let applied = try rampart("apply", "-f", file, "--state", target.state)
        #expect(applied.succeeded, "\(applied.stdout)\(applied.stderr)")
        let expected = try ConfigCommandTests.exampleResources()
        #expect(applied.stdout.split(separator: "\n").filter { $0.hasSuffix(" created") }.count == expected.count, "\(applied.stdout)")
        let again = try rampart("apply", "-f", file, "--state", target.state)
        #expect(again.stdout.hasSuffix("config version 1 (nothing changed)\n"), "\(again.stdout)\(again.stderr)")

        // The same resources, field for field: each kind's specs as the two stores print them.
        func specs(_ state: String) throws -> [String: String] {
            let listed = try rampart("get", "ap,pa,ra", "-A", "-o", "json", "--state", state)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])
            var found: [String: String] = [:]
            for item in object["items"] as? [[String: Any]] ?? [] {
                let metadata = item["metadata"] as? [String: Any] ?? [:]
                let key = "\(item["kind"] ?? "")/\(metadata["namespace"] ?? "")/\(metadata["name"] ?? "")"
                let spec = try JSONSerialization.data(withJSONObject: item["spec"] ?? [:], options: [.sortedKeys])
                found[key] = String(decoding: spec, as: UTF8.self)
            }
            return found
        }
        let before = try specs(source.state)
        #expect(before.count == expected.count)
        #expect(try specs(target.state) == before)

        // The stored documents are YAML of their own that analyze accepts.
        let yaml = try rampart("get", "ap", "-A", "-o", "yaml", "--state", target.state)
        let back = "\(target.directory)/back.yaml"
        try yaml.stdout.write(toFile: back, atomically: true, encoding: .utf8)
        let analyzed = try rampart("analyze", back)
        #expect(analyzed.status == 0, "\(analyzed.stdout)\(analyzed.stderr)")
    }

    @Test("a kubectl List's items are stored each as a document of its own, strings that look like numbers kept strings")
    func kubectlList() throws {
        let ca = try CAProcess(label: "config-list-kubectl")
        let file = "\(ca.directory)/list.yaml"
        try """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: security.istio.io/v1
              kind: AuthorizationPolicy
              metadata: {name: ports, namespace: shop, resourceVersion: "7", uid: 1f, generation: 2}
              spec:
                action: DENY
                rules:
                - to: [{operation: {ports: ["8080"], paths: ["*.php", "/admin*"]}}]
                  when: [{key: "request.headers[x-flag]", values: ["true", "null"]}]
            - {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": {"name": "default", "namespace": "shop"}, "spec": {"mtls": {"mode": "STRICT"}}}
            metadata: {resourceVersion: ""}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let applied = try rampart("apply", "-f", file, "--state", ca.state)
        #expect(applied.succeeded, "\(applied.stdout)\(applied.stderr)")
        #expect(applied.stdout.contains("authorizationpolicy.security.istio.io shop/ports created"))
        #expect(applied.stdout.contains("peerauthentication.security.istio.io shop/default created"))

        let stored = try rampart("get", "ap", "ports", "-n", "shop", "-o", "yaml", "--state", ca.state)
        #expect(stored.stdout.hasPrefix("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"), "\(stored.stdout)")
        #expect(!stored.stdout.contains("items"), "\(stored.stdout)")
        let json = try rampart("get", "ap", "ports", "-n", "shop", "-o", "json", "--state", ca.state)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let rule = ((object["spec"] as? [String: Any])?["rules"] as? [[String: Any]])?.first
        let operation = ((rule?["to"] as? [[String: Any]])?.first?["operation"]) as? [String: Any]
        #expect(operation?["ports"] as? [String] == ["8080"], "\(json.stdout)")
        #expect(operation?["paths"] as? [String] == ["*.php", "/admin*"], "\(json.stdout)")
        #expect((rule?["when"] as? [[String: Any]])?.first?["values"] as? [String] == ["true", "null"], "\(json.stdout)")
        let peer = try rampart("get", "pa", "default", "-n", "shop", "-o", "yaml", "--state", ca.state)
        #expect(peer.stdout.contains("mode: STRICT"), "\(peer.stdout)")

        // The stored documents reload: the CA's snapshot reads them as the List gave them.
        let check = "\(ca.directory)/request.json"
        try #"{"destination": {"namespace": "shop", "port": 8080}, "method": "GET", "path": "/admin/x", "headers": {"x-flag": "true"}}"#
            .write(toFile: check, atomically: true, encoding: .utf8)
        let back = "\(ca.directory)/stored.yaml"
        try stored.stdout.write(toFile: back, atomically: true, encoding: .utf8)
        let decided = try rampart("authz", "check", "--policies", back, "--request", check, "--json")
        let decision = try #require(
            try JSONSerialization.jsonObject(with: Data(decided.stdout.utf8)) as? [String: Any], "\(decided.stderr)")
        #expect(decision["decision"] as? String == "deny" && decision["policy"] as? String == "shop/ports", "\(decided.stdout)")
    }

    @Test("apply -n puts documents without a namespace there, writes it in, and refuses a document naming another")
    func namespaceOption() throws {
        let ca = try CAProcess(label: "config-apply-namespace")
        let file = "\(ca.directory)/p.yaml"
        try """
            # no namespace here
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata:
              name: allow-get
            spec:
              rules:
              - to: [{operation: {methods: [GET], ports: ["8080"]}}]
            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: default, namespace: web}
            spec: {mtls: {mode: STRICT}}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let applied = try rampart("apply", "-f", file, "-n", "web", "--state", ca.state)
        #expect(applied.succeeded, "\(applied.stdout)\(applied.stderr)")
        #expect(applied.stdout.contains("authorizationpolicy.security.istio.io web/allow-get created"), "\(applied.stdout)")
        #expect(applied.stdout.contains("peerauthentication.security.istio.io web/default created"), "\(applied.stdout)")
        let stored = try rampart("get", "ap", "allow-get", "-n", "web", "-o", "yaml", "--state", ca.state)
        #expect(stored.stdout.contains("namespace: web"), "\(stored.stdout)")
        // The document that named its namespace is stored as written, comments and all.
        let peer = try rampart("get", "pa", "default", "-n", "web", "-o", "yaml", "--state", ca.state)
        #expect(withoutStoreFields(peer.stdout) == "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: web}\nspec: {mtls: {mode: STRICT}}\n", "\(peer.stdout)")
        let again = try rampart("apply", "-f", file, "-n", "web", "--state", ca.state)
        #expect(again.stdout.hasSuffix("config version 1 (nothing changed)\n"), "\(again.stdout)\(again.stderr)")
        // Without -n the same document goes to default, as with kubectl.
        let plain = try rampart("apply", "-f", file, "--state", ca.state)
        #expect(plain.stdout.contains("authorizationpolicy.security.istio.io default/allow-get created"), "\(plain.stdout)")
        // -o yaml writes the namespace in, as kubectl does, so the output applies back where it came from.
        let printed = try rampart("get", "ap", "allow-get", "-n", "default", "-o", "yaml", "--state", ca.state)
        #expect(printed.stdout.contains("namespace: default"), "\(printed.stdout)")
        let moved = try run(Paths.rampart, ["apply", "-f", "-", "-n", "web", "--state", ca.state], input: printed.stdout)
        #expect(moved.status == 1 && moved.stderr.contains("names namespace default, not web"), "\(moved.stdout)\(moved.stderr)")

        // A document naming another namespace refuses the batch; nothing is stored.
        let other = try rampart("apply", "-f", file, "-n", "shop", "--state", ca.state)
        #expect(other.status == 1)
        #expect(other.stderr.contains("names namespace web, not shop as -n says"), "\(other.stderr)")
        #expect(other.stderr.contains(" metadata.namespace: the document names"), "\(other.stderr)")
        #expect(other.stderr.contains("nothing was stored"), "\(other.stderr)")
        let shop = try rampart("get", "ap", "-n", "shop", "-o", "name", "--state", ca.state)
        #expect(shop.stdout.isEmpty, "\(shop.stdout)")

        let badName = try rampart("apply", "-f", file, "-n", "Not_A_Namespace", "--state", ca.state)
        #expect(badName.status == 64 && badName.stderr.contains("is not a namespace name"), "\(badName.stderr)")
    }

    @Test("kubectl's --dry-run=client and --dry-run=server store nothing, --dry-run=none stores, and another value is refused")
    func kubectlDryRun() throws {
        let ca = try CAProcess(label: "config-dry-run-forms")
        for form in ["--dry-run=client", "--dry-run=server"] {
            let previewed = try rampart("apply", "-f", ConfigCommandTests.policies, form, "--state", ca.state)
            #expect(previewed.succeeded && previewed.stdout.contains("(dry run: nothing was stored)"), "\(form): \(previewed.stdout)\(previewed.stderr)")
        }
        let empty = try rampart("get", "ap", "-A", "--state", ca.state)
        #expect(empty.succeeded && empty.stdout.isEmpty && empty.stderr.contains("No resources found"), "\(empty.stdout)\(empty.stderr)")
        let refused = try rampart("apply", "-f", ConfigCommandTests.policies, "--dry-run=true", "--state", ca.state)
        #expect(refused.status == 64 && refused.stderr.contains("--dry-run=client, --dry-run=server or --dry-run=none"), "\(refused.stderr)")
        let stored = try rampart("apply", "-f", ConfigCommandTests.policies, "--dry-run=none", "--state", ca.state)
        #expect(stored.succeeded && stored.stdout.contains("config version 1\n"), "\(stored.stdout)\(stored.stderr)")
    }

    @Test("a pipe (<(...)) is read once and read alike by every command: apply stores from it, analyze and --workloads read it")
    func processSubstitution() throws {
        let ca = try CAProcess(label: "config-pipe")
        let file = "\(ConfigCommandTests.policies)/allow-nothing.yaml"
        func shell(_ command: String) throws -> CommandResult {
            try run("/bin/bash", ["-c", command])
        }
        let applied = try shell("'\(Paths.rampart)' apply -f <(cat '\(file)') --state '\(ca.state)'")
        #expect(applied.succeeded && applied.stdout.contains("shop/allow-nothing created"), "\(applied.stdout)\(applied.stderr)")
        let analyzed = try shell("'\(Paths.rampart)' analyze <(cat '\(file)')")
        #expect(analyzed.status == 0 && !analyzed.stderr.contains("found in"), "\(analyzed.stdout)\(analyzed.stderr)")
        let workloads = "- namespace: shop\n  labels: {app: cart}\n- namespace: shop\n  lables: {app: x}\n"
        let listed = try shell("'\(Paths.rampart)' analyze '\(file)' --workloads <(printf '%s' '\(workloads)')")
        #expect(listed.status == 64 && listed.stderr.contains(":4: [1].lables: unknown field"), "\(listed.stderr)")
    }

    @Test("apply --root-namespace works the warnings out against the mesh's root namespace, as ca serve --root-namespace has it")
    func rootNamespace() throws {
        let ca = try CAProcess(label: "config-root-namespace")
        func peer(_ namespace: String) throws -> String {
            let file = "\(ca.directory)/\(namespace).yaml"
            try "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: web, namespace: \(namespace)}\nspec:\n  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            return file
        }
        let meshRoot = try rampart("apply", "--dry-run", "-f", try peer("mesh-root"), "--root-namespace", "mesh-root", "--state", ca.state)
        #expect(meshRoot.succeeded && meshRoot.stderr.contains("RP071"), "\(meshRoot.stderr)")
        let ordinary = try rampart("apply", "--dry-run", "-f", try peer("istio-system"), "--root-namespace", "mesh-root", "--state", ca.state)
        #expect(ordinary.succeeded && !ordinary.stderr.contains("RP071"), "\(ordinary.stderr)")
        let byDefault = try rampart("apply", "--dry-run", "-f", try peer("istio-system"), "--state", ca.state)
        #expect(byDefault.stderr.contains("RP071"), "\(byDefault.stderr)")
        let refused = try rampart("apply", "-f", try peer("istio-system"), "--root-namespace", "Not_A_Namespace", "--state", ca.state)
        #expect(refused.status == 64 && refused.stderr.contains("--root-namespace"), "\(refused.stderr)")
    }
}
