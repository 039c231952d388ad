import Foundation
import Testing

@testable import RampartPolicy

/// `--json --explain` gives each policy's outcome, the rule that matched, and for each rule the
/// fields that failed, as fields a script can read rather than sentences.
@Suite("explanations as data")
struct StructuredExplainTests {
    static let policies = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-admin, namespace: ns1}
        spec:
          action: DENY
          rules: [{to: [{operation: {ports: ["9090"], paths: ["/admin*"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-front, namespace: ns1}
        spec:
          rules:
          - from: [{source: {principals: ["cluster.local/ns/ns1/sa/front"]}}]
            to: [{operation: {methods: [GET]}}]
            when: [{key: "request.headers[x-env]", notValues: [prod]}]
          - from: [{source: {namespaces: [ns2]}}, {source: {principals: ["*/sa/ops"]}}]
          - to: [{operation: {ports: ["8080"], paths: ["/public/*"]}}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-metrics, namespace: ns1}
        spec:
          rules: [{to: [{operation: {paths: ["/metrics"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: elsewhere, namespace: ns1}
        spec:
          selector: {matchLabels: {app: other}}
          rules: [{}]
        """

    static func explained(_ request: AuthzRequest) -> [[String: Any]] {
        Fixture.engine(policies).snapshot.explain(request).trace.jsonObject
    }

    static func step(_ steps: [[String: Any]], _ policy: String) throws -> [String: Any] {
        try #require(steps.first { $0["policy"] as? String == policy })
    }

    @Test("a rule that fails names every failing field with the request's value and the listed values")
    func failingFields() throws {
        let request = Fixture.http(principal: "cluster.local/ns/ns1/sa/front", method: "POST", path: "/cart", headers: ["x-env": "prod"])
        let steps = Self.explained(request)
        let allow = try Self.step(steps, "ns1/allow-front")
        #expect(allow["outcome"] as? String == "not matched")
        #expect(allow["matched_rule"] is NSNull)
        let rules = try #require(allow["rules"] as? [[String: Any]])
        #expect(rules.map { $0["index"] as? Int } == [0, 1, 2])
        #expect(rules.allSatisfy { $0["outcome"] as? String == "not matched" })
        let first = try #require(rules[0]["failed"] as? [[String: Any]])
        #expect(first.map { $0["field"] as? String } == ["rules[0].to[0].operation.methods", "rules[0].when[0].notValues"])
        #expect(first[0]["value"] as? String == "POST")
        #expect(first[0]["values"] as? [String] == ["GET"])
        #expect(first[0]["negated"] as? Bool == false)
        #expect(first[1]["key"] as? String == "request.headers[x-env]")
        #expect(first[1]["value"] as? String == "prod")
        #expect(first[1]["negated"] as? Bool == true)
        // Neither `from` entry of rule 1 matches: each entry's failing field is listed.
        let second = try #require(rules[1]["failed"] as? [[String: Any]])
        #expect(second.map { $0["field"] as? String } == ["rules[1].from[0].source.namespaces", "rules[1].from[1].source.principals"])
        // A path the request lacks the start of: the value is the normalized path.
        let third = try #require(rules[2]["failed"] as? [[String: Any]])
        #expect(third.map { $0["field"] as? String } == ["rules[2].to[0].operation.paths"])
        #expect(third[0]["value"] as? String == "/cart")
    }

    @Test("a missing value is null, with why it is missing")
    func missingValue() throws {
        let steps = Self.explained(Fixture.http(principal: nil, path: "/cart"))
        let rules = try #require(try Self.step(steps, "ns1/allow-front")["rules"] as? [[String: Any]])
        let failure = try #require((rules[0]["failed"] as? [[String: Any]])?.first)
        #expect(failure["field"] as? String == "rules[0].from[0].source.principals")
        #expect(failure["value"] is NSNull)
        #expect((failure["missing"] as? String)?.hasPrefix("no peer identity") == true)
    }

    @Test("the deciding policy says which rule matched and on which fields; later policies were not evaluated")
    func matchedRule() throws {
        let steps = Self.explained(Fixture.http(principal: "cluster.local/ns/ns1/sa/front", path: "/metrics"))
        let allow = try Self.step(steps, "ns1/allow-front")
        #expect(allow["outcome"] as? String == "matched")
        #expect(allow["matched_rule"] as? Int == 0)
        let rules = try #require(allow["rules"] as? [[String: Any]])
        #expect(rules.count == 1)
        #expect(rules[0]["matched_fields"] as? [String] == [
            "rules[0].from[0].source.principals", "rules[0].to[0].operation.methods", "rules[0].when[0].notValues",
        ])
        let metrics = try Self.step(steps, "ns1/allow-metrics")
        #expect(metrics["outcome"] as? String == "not evaluated")
        #expect(metrics["rules"] == nil)
        let deny = try Self.step(steps, "ns1/deny-admin")
        #expect(deny["outcome"] as? String == "not matched")
        let elsewhere = try Self.step(steps, "ns1/elsewhere")
        #expect(elsewhere["outcome"] as? String == "not applied")
        #expect(elsewhere["matched_rule"] is NSNull)
    }

    @Test("on TCP an ALLOW rule with HTTP-only fields is skipped, and names them")
    func skippedOnTCP() throws {
        let steps = Self.explained(Fixture.tcp(principal: "cluster.local/ns/ns1/sa/front", port: 8080))
        let rules = try #require(try Self.step(steps, "ns1/allow-front")["rules"] as? [[String: Any]])
        #expect(rules[0]["outcome"] as? String == "skipped on TCP")
        #expect(rules[0]["http_only_fields"] as? [String] == ["rules[0].to[0].operation.methods", "rules[0].when[0].notValues"])
        #expect(rules[0]["failed"] == nil)
        #expect(rules[1]["outcome"] as? String == "not matched")
        // A DENY rule keeps its other fields on TCP: it matches on them, naming those it ignored.
        let denied = Self.explained(Fixture.tcp(principal: "cluster.local/ns/ns1/sa/front", port: 9090))
        let deny = try Self.step(denied, "ns1/deny-admin")
        #expect(deny["outcome"] as? String == "matched")
        let denyRules = try #require(deny["rules"] as? [[String: Any]])
        #expect(denyRules[0]["matched_fields"] as? [String] == ["rules[0].to[0].operation.ports"])
        #expect(denyRules[0]["http_only_fields"] as? [String] == ["rules[0].to[0].operation.paths"])
    }

    @Test("the authentication steps carry no outcome of their own")
    func authnSteps() throws {
        let steps = Self.explained(Fixture.http())
        let peer = try Self.step(steps, "(none)")
        #expect(peer["kind"] as? String == "PeerAuthentication")
        #expect(peer["outcome"] == nil)
        #expect((peer["notes"] as? [String])?.isEmpty == false)
    }
}
