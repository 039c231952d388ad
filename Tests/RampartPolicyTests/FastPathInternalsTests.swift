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
        #expect(policies.resolved.program.headerNames.map(\.name) == ["x-a", "x-b"])
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

    @Test("a rule's path filter admits every path its literals match, and skips most others")
    func pathFilter() {
        var random = SystemRandomNumberGenerator()
        let alphabet = Array("/abcdefgh.-_0123456789".utf8)
        func text(_ length: Int) -> [UInt8] { (0..<length).map { _ in alphabet.randomElement(using: &random)! } }
        var skipped = 0
        var unrelated = 0
        for _ in 0..<300 {
            let prefixes = (0..<Int.random(in: 0...3, using: &random)).map { _ in text(Int.random(in: 1...12, using: &random)) }
            let suffixes = (0..<Int.random(in: 0...2, using: &random)).map { _ in text(Int.random(in: 1...12, using: &random)) }
            let filter = PathFilter(prefixes: prefixes, suffixes: suffixes)
            #expect(filter.isEmpty == (prefixes.isEmpty && suffixes.isEmpty))
            func admits(_ path: [UInt8]) -> Bool { path.withUnsafeBufferPointer { filter.admits($0) } }
            for literal in prefixes {
                #expect(admits(literal) && admits(literal + text(5)), "\(prefixes) \(suffixes)")
            }
            for literal in suffixes {
                #expect(admits(literal) && admits(text(5) + literal), "\(prefixes) \(suffixes)")
            }
            guard !filter.isEmpty else { continue }
            for _ in 0..<20 {
                let path = text(Int.random(in: 0...20, using: &random))
                let matches =
                    prefixes.contains { path.starts(with: $0) } || suffixes.contains { path.reversed().starts(with: $0.reversed()) }
                if matches {
                    #expect(admits(path))
                } else {
                    unrelated += 1
                    if !admits(path) { skipped += 1 }
                }
            }
        }
        // With a few literals in 24 bits, most unrelated paths are skipped.
        #expect(skipped * 2 > unrelated, "\(skipped) of \(unrelated)")
    }

    @Test("rules filed by principal with methods and paths skip other methods and paths, deciding as before",
        arguments: ["DENY", "ALLOW"])
    func methodAndPathFilters(action: String) {
        let engine = Fixture.engine(
            Fixture.policy(
                "p", action: action,
                rules: """
                      - from: [{source: {principals: ["cluster.local/ns/ns1/sa/a"]}}]
                        to: [{operation: {methods: ["GET", "HEAD"], paths: ["/api/v1/orders*", "*.json"]}}]
                      - from: [{source: {principals: ["cluster.local/ns/ns1/sa/a"]}}]
                        to: [{operation: {methods: ["POST"]}}, {operation: {paths: ["/upload"]}}]
                      - from: [{source: {principals: ["cluster.local/ns/ns1/sa/a"]}}]
                        to: [{operation: {paths: ["/healthz"]}}, {operation: {paths: ["/status*"]}}]
                    """))
        let workload = engine.snapshot.workload(namespace: "ns1", labels: ["app": "b"])
        let program = workload.resolved.program
        let rules = program.ruleOffsets.map { program.code.rule(Int($0)) }
        #expect(rules[0].methods != 0 && !rules[0].paths.isEmpty)
        #expect(rules[1].methods == 0 && rules[1].paths.isEmpty)
        #expect(rules[2].methods == 0 && !rules[2].paths.isEmpty)
        for method in ["GET", "HEAD", "POST", "PUT", "get"] {
            for path in ["/api/v1/orders", "/api/v1/orders/7", "/x/a.json", "/api/v1/order", "/upload", "/healthz",
                "/status/x", "/other", "/", "/api/v1/orders?x=1", "/api/v1/../v1/orders/1"]
            {
                for principal in ["cluster.local/ns/ns1/sa/a", "cluster.local/ns/ns1/sa/b"] {
                    let request = Fixture.http(principal: principal, method: method, path: path)
                    #expect(workload.evaluate(request) == workload.evaluateReference(request), "\(method) \(path)")
                }
            }
        }
        let tcp = Fixture.tcp(principal: "cluster.local/ns/ns1/sa/a")
        #expect(workload.evaluate(tcp) == workload.evaluateReference(tcp))
        let allowed = workload.evaluate(Fixture.http(method: "GET", path: "/api/v1/orders/7"))
        #expect(allowed.rule == 0 && allowed.decision == (action == "ALLOW" ? .allow : .deny))
        let other = workload.evaluate(Fixture.http(method: "PUT", path: "/status/x"))
        #expect(other.rule == 2)
    }
}
