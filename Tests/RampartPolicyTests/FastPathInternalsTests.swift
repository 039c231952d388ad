import Testing

@testable import RampartPolicy

@Suite("fast path internals")
struct FastPathInternalsTests {
    @Test("the intern table finds every key it was built from and nothing else")
    func internTable() {
        var keys: [String: Int32] = [:]
        for index in 0..<300 { keys["cluster.local/ns/team-\(index % 17)/sa/app-\(index)"] = Int32(index) }
        let table = InternTable(keys)
        for (key, id) in keys { #expect(table.id(key) == id) }
        #expect(table.id("cluster.local/ns/team-1/sa/app-300") == nil)
        #expect(table.id("") == nil)
        #expect(InternTable([:]).id("anything") == nil)
        let small = InternTable(["GET": 0, "POST": 1, "": 2])
        #expect(small.id("GET") == 0 && small.id("POST") == 1 && small.id("") == 2 && small.id("PUT") == nil)
        // A slice of a larger string, as the namespace inside a principal is looked up.
        let namespaces = InternTable(["team-1": 7, "team-12": 8])
        let principal = Array("cluster.local/ns/team-12/sa/app".utf8)
        principal.withUnsafeBufferPointer { bytes in
            #expect(namespaces.id(bytes: UnsafeBufferPointer(rebasing: bytes[17..<24])) == 8)
            #expect(namespaces.id(bytes: UnsafeBufferPointer(rebasing: bytes[17..<23])) == 7)
            #expect(namespaces.id(bytes: UnsafeBufferPointer(rebasing: bytes[17..<22])) == nil)
            #expect(namespaces.id(bytes: UnsafeBufferPointer(rebasing: bytes[0..<0])) == nil)
        }
    }

    @Test("splits Istio workload principals, falling back for non-ASCII ones", arguments: [
        ("cluster.local/ns/shop/sa/cart", "shop" as String?, "cart" as String?),
        ("td/ns/n\u{E9}/sa/x", "n\u{E9}", "x"),
        ("cluster.local/ns/shop/sa/cart/extra", nil, nil),
        ("cluster.local/ns/shop/as/cart", nil, nil),
        ("cluster.local/nss/shop/sa/cart", nil, nil),
        ("cluster.local/ns//sa/", "", ""),
        ("no-slashes", nil, nil),
        ("", nil, nil),
    ])
    func principalSplit(principal: String, namespace: String?, serviceAccount: String?) {
        let workload = PreparedRequest.istioWorkload(principal)
        #expect(workload?.namespace == namespace)
        #expect(workload?.serviceAccount == serviceAccount)
        #expect(PreparedRequest.istioNamespace(principal) == namespace)
    }

    @Test("the word-at-a-time path scan normalizes exactly as the byte-by-byte normalization")
    func pathScan() {
        let pieces = [
            "a", "bc", "/", "/", ".", "..", "?", "#", "%2E", "%41", "\\", "x=1", "é", "/api/v1/orders", "%2f", "%",
            "%3", " ", "{", "~", "|", "%2e", "\u{7f}", "^", "<", ">", "`", "\"", "=", "]", "!", "$", "\t", "%2F",
        ]
        var random = SeededGenerator(seed: 11)
        var differences: [String] = []
        for _ in 0..<4000 {
            let path = "/" + (0..<random.index(12)).map { _ in random.pick(pieces) }.joined()
            if PathNormalizer.normalize(path) != PathNormalizer.slowNormalize(path) { differences.append(path) }
        }
        #expect(differences.isEmpty, "\(differences.prefix(5))")
        #expect(PathNormalizer.normalizedIfChanged("/api/v1/orders/12345") == nil)
        #expect(PathNormalizer.normalizedIfChanged("/api/v1/orders/1234?a=b") == "/api/v1/orders/1234")
        #expect(PathNormalizer.normalizedIfChanged("/api/v1/orders/123/.x") == nil)
        #expect(PathNormalizer.normalizedIfChanged("/api/v1/orders/123/./x") == "/api/v1/orders/123/x")
    }

    @Test("the allocation-free dotted-digits parse agrees with the general IPv4 parser")
    func dottedDigits() {
        let pieces = ["0", "1", "9", "25", "255", "256", "007", "1234", ".", ".", "a", ""]
        var random = SeededGenerator(seed: 5)
        var differences: [String] = []
        for _ in 0..<5000 {
            let text = (0..<random.index(9)).map { _ in random.pick(pieces) }.joined()
            let general = text.allSatisfy { $0 == "." || ("0"..."9").contains($0) } ? IPAddress.parseV4(text) : nil
            switch IPAddress.parseDottedDigits(text) {
            case .address(let value): if general != value { differences.append(text) }
            case .invalid: if general != nil || !text.allSatisfy({ $0 == "." || $0.isNumber }) { differences.append(text) }
            case .notDigits: if text.allSatisfy({ $0 == "." || ("0"..."9").contains($0) }) { differences.append(text) }
            }
        }
        #expect(differences.isEmpty, "\(differences.prefix(5))")
    }

    /// The workload policies of one DENY policy `p` in ns1 with these rules.
    private static func policies(_ rules: String) -> WorkloadPolicies {
        Fixture.engine(Fixture.policy("p", action: "DENY", rules: rules)).snapshot.workload(namespace: "ns1", labels: [:])
    }

    private static func rule(_ rules: String) -> CompiledRule {
        policies(rules).resolved.deny[0].rules[0]
    }

    @Test("evaluates the section most likely to fail first: positive checks before negated ones")
    func sectionOrder() {
        let negatedFrom = Self.rule(
            """
              - from: [{source: {notNamespaces: ["ops"]}}]
                to: [{operation: {paths: ["/admin*"]}}]
            """)
        // `to` (positive path) first, then `from` (negated), then the empty `when`.
        #expect(WorkloadProgramBuilder.sectionOrder(negatedFrom) == 1 | 0 << 2 | 2 << 4)
        let positiveFrom = Self.rule(
            """
              - from: [{source: {principals: ["cluster.local/ns/a/sa/b"]}}]
                to: [{operation: {notPaths: ["/healthz"]}}]
                when: [{key: "request.headers[x-tenant]", values: ["t1"]}]
            """)
        #expect(WorkloadProgramBuilder.sectionOrder(positiveFrom) == 0 | 2 << 2 | 1 << 4)
    }

    @Test("orders the checks of a list positive first, cheapest first")
    func checkOrder() {
        let program = Self.policies(
            """
              - to: [{operation: {notMethods: ["GET"], paths: ["/x*"], ports: ["8080"], notPorts: ["9090"]}}]
            """
        ).resolved.program
        #expect(program.checks.map(\.kind) == [.port, .path, .port, .method])
        #expect(program.checks.map(\.negated) == [false, false, true, true])
        let positive = Self.policies(
            """
              - to: [{operation: {paths: ["/a"], methods: ["GET"], ports: ["80"]}}]
            """
        ).resolved.program
        #expect(positive.checks.map(\.kind) == [.port, .method, .path])
    }

    @Test("checks reading one header share its slot and look it up once")
    func headerSlots() {
        let policies = Self.policies(
            """
              - when: [{key: "request.headers[x-a]", values: ["1"]}]
              - when: [{key: "request.headers[x-b]", values: ["1"]}, {key: "request.headers[x-a]", values: ["2"]}]
              - when: [{key: "request.headers[x-a]", notValues: ["3"]}]
            """)
        #expect(policies.resolved.program.headerNames == ["x-a", "x-b"])
        for (headers, denied) in [(["x-a": "1"], true), (["x-a": "2", "x-b": "1"], true), (["x-a": "3"], false)] {
            let request = AuthzRequest(destination: .init(namespace: "ns1"), method: "GET", path: "/", headers: headers)
            #expect((policies.evaluate(request).decision == .deny) == denied)
            #expect(policies.evaluate(request) == policies.evaluateReference(request))
        }
    }

    @Test("a rule group's header stays within two cache lines, its count and path keys first")
    func groupLayout() {
        #expect(MemoryLayout<RuleGroup>.size <= 128)
        #expect(MemoryLayout<RuleGroup>.offset(of: \.ruleCount) == 0)
        #expect(MemoryLayout<PathKeys>.size == 2)
    }

    @Test("a program's own copy of its code reads as the code it was built from")
    func codeMemory() {
        let engine = Fixture.engine(
            Fixture.policy("p", rules: "  - to: [{operation: {paths: [\"/admin\"], methods: [GET]}}]"))
        let program = engine.snapshot.workload(namespace: "ns1", labels: ["app": "b"]).resolved.program
        program.withView { view in
            #expect(Array(view.words) == program.code.words)
            #expect(Array(view.bytes) == program.code.bytes)
        }
        let empty = CodeMemory<UInt8>([])
        #expect(empty.buffer.isEmpty)
        empty.free()
    }
}
