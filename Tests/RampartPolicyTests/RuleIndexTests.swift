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
          - to: [{operation: {hosts: ["open.example.com"]}}]
          - from: [{source: {notPrincipals: ["cluster.local/ns/a/sa/x"]}}]
        """

    private func program() -> WorkloadProgram {
        let engine = PolicyEngine(yaml: Self.yaml)
        return engine.snapshot.workload(namespace: "ns1", labels: [:]).resolved.program
    }

    private func candidates(_ program: WorkloadProgram, principal: String?, namespace: String?) -> [Int32] {
        let group = program.enforced
        var cursor = group.candidates(
            principal: principal.flatMap { program.principalIDs[$0] } ?? -1,
            namespace: namespace.flatMap { program.namespaceIDs[$0] } ?? -1, method: -1, isHTTP: true, in: program.code)
        var found: [Int32] = []
        while let offset = cursor.next(program.code) { found.append(program.position(ofRuleAt: offset) ?? -1) }
        return found
    }

    private func wild(_ program: WorkloadProgram, _ group: RuleGroup) -> [Int32] {
        (group.wild.lower..<group.wild.upper).map {
            program.position(ofRuleAt: Int32(bitPattern: program.code.word($0))) ?? -1
        }
    }

    @Test("files exact-identity rules under their principals and namespaces, the rest as wild")
    func filing() {
        let program = program()
        #expect(wild(program, program.enforced) == [2, 3, 4])
        #expect(program.principalIDs.count == 2 && program.namespaceIDs.keys.sorted() == ["b"])
        #expect(program.enforced.ruleCount == 5)
    }

    @Test("visits each candidate once, in rule order, merging buckets with the wild rules")
    func merging() {
        let program = program()
        #expect(candidates(program, principal: "cluster.local/ns/a/sa/x", namespace: "a") == [0, 1, 2, 3, 4])
        #expect(candidates(program, principal: "cluster.local/ns/a/sa/y", namespace: "b") == [0, 1, 2, 3, 4])
        #expect(candidates(program, principal: "cluster.local/ns/b/sa/z", namespace: "b") == [1, 2, 3, 4])
        #expect(candidates(program, principal: nil, namespace: nil) == [2, 3, 4])
    }

    @Test("buckets hold (id, offset) pairs by id, offsets ascending, and find an id's run")
    func buckets() {
        let program = program()
        let pairs = program.enforced.byPrincipal
        let x = program.principalIDs["cluster.local/ns/a/sa/x"]
        let y = program.principalIDs["cluster.local/ns/a/sa/y"]
        func positions(_ id: Int32) -> [Int32] {
            RuleGroup.bucket(pairs, id, program.code).map {
                program.position(ofRuleAt: Int32(bitPattern: program.code.word($0))) ?? -1
            }
        }
        #expect(positions(x ?? -1) == [0, 1])
        #expect(positions(y ?? -1) == [0])
        #expect(positions(-1).isEmpty && positions(9).isEmpty)
        let namespace = program.namespaceIDs["b"] ?? -1
        #expect(RuleGroup.bucket(program.enforced.byNamespace, namespace, program.code).map { _ in 1 }.count == 1)
    }

    @Test("finds every id's run in short scanned bucket lists and in long ones with a run table", arguments: [3, 8, 9, 40])
    func runs(principals count: Int) {
        // Rule i names principals i and i+1, so each principal but the ends has a run of two rules.
        let rules = (0..<count).map { index in
            "  - from: [{source: {principals: [\"cluster.local/ns/a/sa/p\(index)\", \"cluster.local/ns/a/sa/p\(index + 1)\"]}}]"
        }
        let program = Fixture.engine(Fixture.policy("p", rules: rules.joined(separator: "\n"))).snapshot
            .workload(namespace: "ns1", labels: [:]).resolved.program
        let pairs = program.enforced.byPrincipal
        #expect(Int(pairs.count) == 2 * count)
        for index in 0...count {
            let id = program.principalIDs["cluster.local/ns/a/sa/p\(index)"] ?? -1
            let positions = RuleGroup.bucket(pairs, id, program.code).map {
                program.position(ofRuleAt: Int32(bitPattern: program.code.word($0))) ?? -1
            }
            let expected = [index - 1, index].filter { $0 >= 0 && $0 < count }.map(Int32.init)
            #expect(positions == expected, "p\(index)")
        }
        #expect(RuleGroup.bucket(pairs, Int32(10_000), program.code).map { $0 }.isEmpty)
        #expect(RuleGroup.bucket(pairs, -1, program.code).map { $0 }.isEmpty)
    }

    @Test("files identity-wild rules that require exact methods under those methods; TCP visits them all")
    func methodIndex() {
        let engine = Fixture.engine(
            Fixture.policy(
                "p", action: "DENY",
                rules: """
                      - to: [{operation: {methods: ["DELETE", "PATCH"]}}]
                      - to: [{operation: {methods: ["GET"]}}, {operation: {paths: ["/x"]}}]
                      - to: [{operation: {methods: ["GET"], notMethods: ["PUT"]}}]
                      - to: [{operation: {methods: ["GE*"]}}]
                    """))
        let program = engine.snapshot.workload(namespace: "ns1", labels: [:]).resolved.program
        func visited(_ method: String?, http: Bool = true) -> [Int32] {
            var cursor = program.enforced.candidates(
                principal: -1, namespace: -1, method: method.flatMap { program.identities.methods[$0] } ?? -1,
                isHTTP: http, in: program.code)
            var found: [Int32] = []
            while let offset = cursor.next(program.code) { found.append(program.position(ofRuleAt: offset) ?? -1) }
            return found
        }
        #expect(visited("DELETE") == [0, 1, 3])
        #expect(visited("GET") == [1, 2, 3])
        #expect(visited("get") == [1, 3])
        #expect(visited(nil) == [1, 3])
        #expect(visited(nil, http: false) == [0, 1, 2, 3])
    }
}
