import Testing

@testable import RampartPolicy

@Suite("identity index of workload programs")
struct RuleIndexTests {
    private static let yaml = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: p, namespace: ns1}
        spec:
          action: ALLOW
          rules:
          - from: [{source: {principals: ["cluster.local/ns/a/sa/x", "cluster.local/ns/a/sa/y"]}}]
          - from: [{source: {namespaces: ["b"]}}, {source: {principals: ["cluster.local/ns/a/sa/x"]}}]
          - from: [{source: {principals: ["cluster.local/ns/*"]}}]
          - to: [{operation: {paths: ["/open"]}}]
          - from: [{source: {notPrincipals: ["cluster.local/ns/a/sa/x"]}}]
        """

    private func program() -> WorkloadProgram {
        let engine = PolicyEngine(yaml: Self.yaml)
        return engine.snapshot.workload(namespace: "ns1", labels: [:]).resolved.program
    }

    private func candidates(_ program: WorkloadProgram, principal: String?, namespace: String?) -> [Int32] {
        let group = program.allow
        var cursor = group.candidates(
            principal: principal.flatMap { program.principalIDs[$0] } ?? -1,
            namespace: namespace.flatMap { program.namespaceIDs[$0] } ?? -1)
        var found: [Int32] = []
        while let position = cursor.next(group) { found.append(position) }
        return found
    }

    @Test("files exact-identity rules under their principals and namespaces, the rest as wild")
    func filing() {
        let program = program()
        #expect(program.allow.wild == [2, 3, 4])
        #expect(program.principalIDs.count == 2 && program.namespaceIDs.keys.sorted() == ["b"])
        #expect(program.allow.ruleCount == 5)
    }

    @Test("visits each candidate once, in rule order, merging buckets with the wild rules")
    func merging() {
        let program = program()
        #expect(candidates(program, principal: "cluster.local/ns/a/sa/x", namespace: "a") == [0, 1, 2, 3, 4])
        #expect(candidates(program, principal: "cluster.local/ns/a/sa/y", namespace: "b") == [0, 1, 2, 3, 4])
        #expect(candidates(program, principal: "cluster.local/ns/b/sa/z", namespace: "b") == [1, 2, 3, 4])
        #expect(candidates(program, principal: nil, namespace: nil) == [2, 3, 4])
    }

    @Test("buckets group positions by id and keep them ascending")
    func buckets() {
        let buckets = Buckets([(id: 2, position: 1), (id: 0, position: 3), (id: 2, position: 5)], idCount: 4)
        #expect(Array(buckets.pool[buckets.range(2)]) == [1, 5])
        #expect(Array(buckets.pool[buckets.range(0)]) == [3])
        #expect(buckets.range(1).isEmpty && buckets.range(3).isEmpty && buckets.range(-1).isEmpty)
        #expect(buckets.range(9).isEmpty)
    }

    @Test("orders the checks of a clause cheapest first")
    func checkOrder() {
        let engine = PolicyEngine(
            yaml: """
                apiVersion: security.istio.io/v1
                kind: AuthorizationPolicy
                metadata: {name: p, namespace: ns1}
                spec:
                  rules:
                  - to: [{operation: {paths: ["/a"], methods: ["GET"], ports: ["80"]}}]
                """)
        let program = engine.snapshot.workload(namespace: "ns1", labels: [:]).resolved.program
        #expect(program.checks.map(\.kind) == [.port, .method, .path])
    }
}
