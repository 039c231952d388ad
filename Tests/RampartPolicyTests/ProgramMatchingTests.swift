import Testing

@testable import RampartPolicy

@Suite("workload program matching")
struct ProgramMatchingTests {
    /// Exact, prefix and suffix literals shorter than, as long as and longer than the eight bytes a
    /// pattern's probe holds, for every string attribute the program compares as bytes.
    private static let literals = ["/a/b", "/abcdefg", "/abcdefgh", "/abcdefghi", "/api/v1/orders/items"]

    private static func values(_ literal: String) -> [String] {
        var values = [literal, literal + "x", "x" + literal, String(literal.dropLast()), String(literal.dropFirst())]
        // The same length with one byte changed at the start, in the middle and at the end.
        for position in [0, literal.utf8.count / 2, literal.utf8.count - 1] {
            var bytes = Array(literal.utf8)
            bytes[position] = bytes[position] == UInt8(ascii: "z") ? UInt8(ascii: "y") : UInt8(ascii: "z")
            values.append(String(decoding: bytes, as: UTF8.self))
        }
        return values
    }

    @Test("exact, prefix and suffix patterns of every length decide as the reference evaluation", arguments: literals)
    func patterns(literal: String) {
        for form in ["\(literal)", "\(literal)*", "*\(literal)"] {
            let engine = Fixture.engine(
                Fixture.policy(
                    "p", action: "ALLOW",
                    rules: """
                          - to: [{operation: {paths: ["\(form)"]}}]
                          - to: [{operation: {hosts: ["\(form)"]}}]
                          - when: [{key: "request.headers[x-v]", values: ["\(form)"]}]
                          - from: [{source: {principals: ["\(form)"]}}]
                        """))
            let workload = engine.snapshot.workload(namespace: "ns1", labels: ["app": "b"])
            for value in Self.values(literal) {
                let requests = [
                    Fixture.http(principal: "cluster.local/ns/x/sa/y", path: value),
                    Fixture.http(principal: "cluster.local/ns/x/sa/y", path: "/", host: value),
                    Fixture.http(principal: "cluster.local/ns/x/sa/y", path: "/", headers: ["x-v": value]),
                    Fixture.http(principal: value, path: "/"),
                ]
                for request in requests {
                    let decision = workload.evaluate(request)
                    #expect(decision == workload.evaluateReference(request), "\(form) against \(value)")
                }
            }
            let exact = workload.evaluate(Fixture.http(principal: "cluster.local/ns/x/sa/y", path: literal))
            #expect(exact.decision == .allow && exact.rule == 0, "\(form)")
        }
    }

    @Test("a rule repeating an earlier one's conditions is never visited; the earlier one decides")
    func repeatedRules() {
        let rules = """
              - from: [{source: {ipBlocks: ["192.0.2.0/24"]}}]
              - to: [{operation: {ports: ["8080"], paths: ["/admin*"]}}]
            """
        let engine = Fixture.engine(
            [
                Fixture.policy("first", action: "DENY", rules: rules),
                Fixture.policy("second", action: "DENY", rules: rules),
                Fixture.policy("third", action: "DENY", rules: "  - to: [{operation: {paths: [\"/admin*\"]}}]"),
            ].joined(separator: "\n---\n"))
        let workload = engine.snapshot.workload(namespace: "ns1", labels: [:])
        let program = workload.resolved.program
        var cursor = program.enforced.candidates(
            principal: -1, namespace: -1, method: -1, port: 8080, path: "/admin/x", source: IPAddress("192.0.2.7"),
            isHTTP: true, in: program.code)
        var visited: [Int32] = []
        while let offset = cursor.next(program.code) { visited.append(program.position(ofRuleAt: offset) ?? -1) }
        #expect(visited == [0, 1, 4])
        #expect(program.enforced.ruleCount == 5)

        let fromBlock = AuthzRequest(
            source: AuthzRequest.Source(principal: "cluster.local/ns/a/sa/b", ip: "192.0.2.7"),
            destination: AuthzRequest.Destination(namespace: "ns1", port: 8080), method: "GET", path: "/admin/x")
        let decision = workload.evaluate(fromBlock)
        #expect(decision.decision == .deny && decision.policy == "ns1/first" && decision.rule == 0)
        #expect(decision == workload.evaluateReference(fromBlock))
        let admin = Fixture.http(port: 8080, path: "/admin/x")
        #expect(workload.evaluate(admin).policy == "ns1/first" && workload.evaluate(admin).rule == 1)
        let otherPort = Fixture.http(port: 9090, path: "/admin/x")
        #expect(workload.evaluate(otherPort).policy == "ns1/third")
        #expect(workload.evaluate(otherPort) == workload.evaluateReference(otherPort))
    }

    @Test("DENY and ALLOW rules share one index: every DENY candidate is met before the first ALLOW one")
    func denyBeforeAllow() {
        // The ALLOW policy comes first in the file and names the same principal, path and port as the
        // DENY policies, so its rules are filed in the same buckets.
        let caller = "cluster.local/ns/ns2/sa/client"
        let engine = Fixture.engine(
            [
                Fixture.policy(
                    "allow-caller", action: "ALLOW",
                    rules: """
                          - from: [{source: {principals: ["\(caller)"]}}]
                          - to: [{operation: {paths: ["/admin*"]}}]
                        """),
                Fixture.policy(
                    "deny-admin", action: "DENY",
                    rules: """
                          - from: [{source: {principals: ["\(caller)"]}}]
                            to: [{operation: {paths: ["/admin*"]}}]
                          - to: [{operation: {ports: ["9090"]}}]
                        """),
            ].joined(separator: "\n---\n"))
        let workload = engine.snapshot.workload(namespace: "ns1", labels: [:])
        let program = workload.resolved.program
        #expect(program.enforced.ruleCount == 4)
        let principal = program.principalIDs[caller] ?? -1
        var cursor = program.enforced.candidates(
            principal: principal, namespace: -1, method: -1, port: 9090, path: "/admin/x", isHTTP: true,
            in: program.code)
        var visited: [Int32] = []
        while let offset = cursor.next(program.code) {
            visited.append(offset)
            #expect(visited.count < 2 || visited[visited.count - 2] < offset, "candidates ascend")
        }
        // Positions are in policy order (DENY first), then rule order.
        let positions = visited.map { program.position(ofRuleAt: $0) ?? -1 }
        #expect(positions == [0, 1, 2, 3])
        #expect(visited.filter { $0 < program.allowStart }.count == 2)

        let cases: [(AuthzRequest, Decision.Verdict, String?, Int?)] = [
            (Fixture.http(principal: caller, path: "/admin/x"), .deny, "ns1/deny-admin", 0),
            (Fixture.http(principal: caller, port: 9090, path: "/"), .deny, "ns1/deny-admin", 1),
            (Fixture.http(principal: caller, path: "/orders"), .allow, "ns1/allow-caller", 0),
            (Fixture.http(principal: "cluster.local/ns/ns3/sa/other", path: "/admin/x"), .allow, "ns1/allow-caller", 1),
            (Fixture.http(principal: "cluster.local/ns/ns3/sa/other", path: "/orders"), .deny, nil, nil),
            // On TCP the DENY rule's path condition is dropped, so it denies the caller outright, and
            // the ALLOW rule on paths is dropped whole.
            (Fixture.tcp(principal: caller, port: 5432), .deny, "ns1/deny-admin", 0),
            (Fixture.tcp(principal: "cluster.local/ns/ns3/sa/other", port: 9090), .deny, "ns1/deny-admin", 1),
            (Fixture.tcp(principal: "cluster.local/ns/ns3/sa/other", port: 5432), .deny, nil, nil),
        ]
        for (request, verdict, policy, rule) in cases {
            let decision = workload.evaluate(request)
            #expect(decision.decision == verdict && decision.policy == policy && decision.rule == rule, "\(request)")
            #expect(decision == workload.evaluateReference(request))
        }
    }

    @Test("a principal named by a rule gives its namespace's id without parsing; others are parsed")
    func namespacesOfInternedPrincipals() {
        let engine = Fixture.engine(
            Fixture.policy(
                "p", action: "ALLOW",
                rules: """
                      - from: [{source: {principals: ["cluster.local/ns/a/sa/x", "other-domain/workload", "cluster.local/ns/zzz/sa/q"]}}]
                        to: [{operation: {paths: ["/p"]}}]
                      - from: [{source: {namespaces: ["a"]}}]
                        to: [{operation: {paths: ["/a"]}}]
                      - from: [{source: {namespaces: ["b"]}}]
                        to: [{operation: {paths: ["/b"]}}]
                    """))
        let workload = engine.snapshot.workload(namespace: "ns1", labels: [:])
        func request(_ principal: String, namespace: String? = nil, path: String) -> AuthzRequest {
            AuthzRequest(
                source: AuthzRequest.Source(principal: principal, namespace: namespace),
                destination: AuthzRequest.Destination(namespace: "ns1", port: 8080), method: "GET", path: path)
        }
        let cases: [(AuthzRequest, Int?)] = [
            (request("cluster.local/ns/a/sa/x", path: "/a"), 1),
            (request("cluster.local/ns/a/sa/x", path: "/b"), nil),
            // Not an Istio workload principal: no namespace, whatever the source claims (as in Istio).
            (request("other-domain/workload", namespace: "b", path: "/b"), nil),
            (request("other-domain/workload", namespace: "a", path: "/b"), nil),
            // Interned, in a namespace no rule names.
            (request("cluster.local/ns/zzz/sa/q", path: "/a"), nil),
            (request("cluster.local/ns/zzz/sa/q", path: "/p"), 0),
            // Not interned: parsed.
            (request("cluster.local/ns/b/sa/y", path: "/b"), 2),
            (request("cluster.local/ns/a/sa/y", path: "/a"), 1),
        ]
        for (request, rule) in cases {
            let decision = workload.evaluate(request)
            #expect(decision.rule == rule && (decision.decision == .allow) == (rule != nil), "\(request)")
            #expect(decision == workload.evaluateReference(request), "\(request)")
        }
    }
}
