import Foundation
import Testing

/// `rampart proxy --status`: readiness on a port of its own, as Istio's sidecars serve it on 15021.
@Suite("proxy status port")
struct ProxyStatusPortTests {
    @Test("--status serves /healthz/ready alone, with the admin port's answer; a bad address is refused before anything starts")
    func statusPort() async throws {
        let ca = try CAProcess(label: "proxy-status")
        let arguments = [
            "proxy", "--workload", "w", "--namespace", "demo", "--app", "127.0.0.1:1", "--inbound", "127.0.0.1:0",
            "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--control-plane", "127.0.0.1:1", "--ca-root", ca.rootPath,
            "--identity-dir", "\(ca.directory)/no-identity-yet", "--access-log", "off",
        ]
        let proxy = try await offPool {
            try ServiceProcess(Paths.rampart, arguments + ["--status", "127.0.0.1:0"], logFile: "\(ca.directory)/proxy.log", marker: "rampart proxy ready")
        }
        defer { proxy.stop() }
        let status = try #require(proxy.port(after: "status="), "\(proxy.readyLine)")
        let admin = try #require(proxy.port(after: "admin="))
        #expect(status != admin)
        // Not ready: no identity and no config. Both ports say so, in the same words.
        let ready = try run("curl", ["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(status)/healthz/ready"])
        #expect(ready.stdout.hasSuffix("\n503") && ready.stdout.contains("no config received"), "\(ready.stdout)")
        let adminReady = try run("curl", ["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(admin)/healthz/ready"])
        #expect(adminReady.stdout == ready.stdout)
        // Metrics and the config dump stay on the admin port.
        let metrics = try run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(status)/stats/prometheus"])
        #expect(metrics.stdout == "404", "\(metrics.stdout)")

        let refused = try run(Paths.rampart, arguments + ["--status", "127.0.0.1"], timeout: 20)
        #expect(!refused.succeeded && refused.stderr.contains("--status 127.0.0.1"), "\(refused.stderr)")
    }
}
