import Foundation
import Testing

/// What kubectl users carry over: exports that re-apply with the same meaning, and kubectl's
/// habits (`-R`, URLs, standard input) met with what they expect or told what to do instead.
@Suite("config commands: exports and kubectl habits")
struct ConfigExportTests {
    @Test("get's output orders competing PeerAuthentications as the store does, whatever creationTimestamp the applied files gave")
    func exportKeepsPrecedence() throws {
        let ca = try CAProcess(label: "config-export-order")
        func apply(_ name: String, _ mode: String, created: String? = nil) throws {
            let file = "\(ca.directory)/\(name).yaml"
            let stamp = created.map { ", creationTimestamp: \"\($0)\"" } ?? ""
            try "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: \(name), namespace: istio-system\(stamp)}\nspec: {mtls: {mode: \(mode)}}\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            let applied = try rampart("apply", "-f", file, "--state", ca.state)
            #expect(applied.succeeded, "\(applied.stderr)")
        }
        try apply("zzz-first", "STRICT")
        Thread.sleep(forTimeInterval: 1.1)
        // Claims to be older than the first: the store dates it when it is applied, as an API server does.
        try apply("aaa-second", "DISABLE", created: "2001-01-01T00:00:00Z")
        let request = "\(ca.directory)/plain.yaml"
        try "protocol: HTTP\nsource: {}\ndestination: {namespace: shop, labels: {app: cart}, port: 8080}\nmethod: GET\npath: /\n"
            .write(toFile: request, atomically: true, encoding: .utf8)
        for format in ["yaml", "json"] {
            let exported = try rampart("get", "pa", "-n", "istio-system", "-o", format, "--state", ca.state)
            #expect(exported.succeeded && !exported.stdout.contains("2001-01-01"), "\(exported.stdout)")
            let file = "\(ca.directory)/export.\(format)"
            try exported.stdout.write(toFile: file, atomically: true, encoding: .utf8)
            let checked = try rampart("authz", "check", "--policies", file, "--request", request, "--json")
            let result = try JSONSerialization.jsonObject(with: Data(checked.stdout.utf8)) as? [String: Any]
            #expect(result?["mtls_mode"] as? String == "STRICT" && result?["decision"] as? String == "deny", "\(format): \(checked.stdout)")
        }
    }

    @Test("kubectl's -R is taken, a URL is refused with how to pipe it in, and a warning on standard input names <stdin>")
    func kubectlHabits() throws {
        let ca = try CAProcess(label: "config-kubectl-habits")
        let recursive = try rampart("apply", "-R", "-f", ConfigCommandTests.policies, "--state", ca.state)
        #expect(recursive.succeeded, "\(recursive.stderr)")
        let url = try rampart("apply", "-f", "https://example.com/policy.yaml", "--state", ca.state)
        #expect(url.status == 1 && url.stderr.contains("a URL: policies are read from files") && url.stderr.contains("curl -fsSL"), "\(url.stderr)")
        // A PeerAuthentication competing with a stored one, sent on standard input.
        let competing = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: zz-other, namespace: istio-system}\nspec: {mtls: {mode: DISABLE}}\n"
        let piped = try run(Paths.rampart, ["apply", "-f", "-", "--state", ca.state], input: competing)
        #expect(piped.succeeded && piped.stderr.contains("RP063"), "\(piped.stderr)")
        #expect(piped.stderr.contains("<stdin>") && !piped.stderr.contains("rampart-apply-"), "\(piped.stderr)")
    }
}
