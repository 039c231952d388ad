import Foundation
import Testing

/// `rampart analyze` and `rampart authz check` as a user runs them.
@Suite("policy commands")
struct PolicyCommandTests {
    static var policies: String { Paths.packageRoot.appendingPathComponent("policies").path }

    @Test("analyze passes every example in policies/ and exits 0")
    func analyzeExamples() throws {
        let result = try rampart("analyze", Self.policies)
        #expect(result.succeeded, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("0 errors, 0 warnings"))
    }

    @Test("analyze names file:line, resource, field and fix for a broken file, and exits 1")
    func analyzeBroken() throws {
        let dir = try Paths.temporaryDirectory("analyze")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = "\(dir)/broken.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: api, namespace: shop}
            spec:
              action: ALLOW
              rules:
              - to: [{operation: {methods: [GET], pathz: [/a]}}]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let human = try rampart("analyze", file)
        #expect(human.status == 1)
        #expect(human.stdout.contains("\(file):7:"), "\(human.stdout)")
        #expect(human.stdout.contains("AuthorizationPolicy shop/api"))
        #expect(human.stdout.contains("spec.rules[0].to[0].operation.pathz"))
        #expect(human.stdout.contains("fix:"))
        let json = try rampart("analyze", file, "--json")
        #expect(json.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["errors"] as? Int == 1)
        let first = try #require((object["diagnostics"] as? [[String: Any]])?.first)
        #expect(first["line"] as? Int == 7)
        #expect(first["field"] as? String == "spec.rules[0].to[0].operation.pathz")
        #expect((first["code"] as? String)?.hasPrefix("RP") == true)
    }

    @Test("authz check prints the decision as JSON, names the deciding policy and rule, and exits 0 on deny")
    func checkDecision() throws {
        let dir = try Paths.temporaryDirectory("authz")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let request = "\(dir)/request.json"
        try """
            {"protocol": "HTTP", "source": {"principal": "cluster.local/ns/shop/sa/web"},
             "destination": {"namespace": "payments", "labels": {"app": "ledger"}, "port": 80},
             "method": "GET", "host": "ledger", "path": "/admin/../admin/keys?x=1"}
            """.write(toFile: request, atomically: true, encoding: .utf8)
        let result = try rampart("authz", "check", "--policies", Self.policies, "--request", request, "--json", "--explain")
        #expect(result.succeeded, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["decision"] as? String == "deny")
        #expect(object["status"] as? Int == 403)
        #expect(object["policy"] as? String == "istio-system/deny-admin")
        #expect(object["rule"] as? Int == 0)
        #expect(object["mtls_mode"] as? String == "STRICT")
        #expect((object["reason"] as? String)?.isEmpty == false)
        let steps = try #require(object["explain"] as? [[String: Any]])
        #expect(steps.contains { $0["policy"] as? String == "istio-system/deny-admin" })
    }

    @Test("authz check refuses a malformed request with the field at fault and a non-zero exit")
    func checkBadRequest() throws {
        let dir = try Paths.temporaryDirectory("authz-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let request = "\(dir)/request.yaml"
        try "protocol: HTTP\ndestination: {namespace: shop, port: eighty}\n".write(toFile: request, atomically: true, encoding: .utf8)
        let result = try rampart("authz", "check", "--policies", Self.policies, "--request", request)
        #expect(!result.succeeded)
        #expect(result.stderr.contains("destination.port"), "\(result.stderr)")
        let missing = try rampart("authz", "check", "--policies", "\(dir)/nope.yaml", "--request", request)
        #expect(!missing.succeeded)
        #expect(missing.stderr.contains("nope.yaml"), "\(missing.stderr)")
    }
}
