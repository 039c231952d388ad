import Testing

@testable import RampartPolicy

@Suite("port index of workload programs")
struct PortIndexTests {
    /// Rule positions: 0 ports only; 1 ports and exact methods; 2 notPorts; 3 one `to` entry
    /// without ports; 4 ports in every entry; 5 exact identity and ports; 6 ports and an HTTP-only
    /// path (filed by path on HTTP); 7 no `to`; 8 a port outside 0...65535.
    private static let rules = """
          - to: [{operation: {ports: ["8080"]}}]
          - to: [{operation: {ports: ["8080"], methods: ["DELETE"]}}]
          - to: [{operation: {notPorts: ["8080"]}}]
          - to: [{operation: {ports: ["9090"]}}, {operation: {paths: ["/x"]}}]
          - to: [{operation: {ports: ["8080"]}}, {operation: {ports: ["9090", "8080"]}}]
          - from: [{source: {principals: ["cluster.local/ns/a/sa/x"]}}]
            to: [{operation: {ports: ["9090"]}}]
          - to: [{operation: {ports: ["8080"], paths: ["/admin*"]}}]
          - when: [{key: "request.headers[x-a]", values: ["1"]}]
          - to: [{operation: {ports: ["70000"]}}]
        """

    private static func workload(action: String = "DENY") -> WorkloadPolicies {
        Fixture.engine(Fixture.policy("p", action: action, rules: rules)).snapshot.workload(namespace: "ns1", labels: [:])
    }

    /// The positions of the rules a request visits.
    private static func visited(
        _ method: String?, port: Int?, http: Bool = true, principal: String? = nil, path: String = "/admin/x"
    ) -> [Int32] {
        let program = workload().resolved.program
        var cursor = program.enforced.candidates(
            principal: principal.flatMap { program.identities.principals[$0] } ?? -1, namespace: -1,
            method: method.flatMap { program.identities.methods[$0] } ?? -1, port: port, path: path, isHTTP: http,
            in: program.code)
        var found: [Int32] = []
        while let offset = cursor.next(program.code) { found.append(program.position(ofRuleAt: offset) ?? -1) }
        return found
    }

    @Test("HTTP requests visit the rules filed under their port, their method's rules and the wild ones")
    func http() {
        #expect(Self.visited("GET", port: 8080) == [0, 2, 3, 4, 6, 7, 8])
        #expect(Self.visited("GET", port: 8080, path: "/api") == [0, 2, 3, 4, 7, 8])
        #expect(Self.visited("DELETE", port: 8080) == [0, 1, 2, 3, 4, 6, 7, 8])
        // Rule 6 is filed by its path on HTTP, so its port does not keep other ports' requests away.
        #expect(Self.visited("GET", port: 9090) == [2, 3, 4, 6, 7, 8])
        #expect(Self.visited("GET", port: 9090, path: "/api") == [2, 3, 4, 7, 8])
        #expect(Self.visited("GET", port: 5432, path: "/api") == [2, 3, 7, 8])
        #expect(Self.visited("GET", port: nil, path: "/api") == [2, 3, 7, 8])
        #expect(Self.visited("GET", port: -1, path: "/api") == [2, 3, 7, 8])
        #expect(Self.visited("GET", port: 9090, principal: "cluster.local/ns/a/sa/x", path: "/api") == [2, 3, 4, 5, 7, 8])
    }

    @Test("TCP requests drop method filing but keep port filing")
    func tcp() {
        #expect(Self.visited(nil, port: 8080, http: false) == [0, 1, 2, 3, 4, 6, 7, 8])
        #expect(Self.visited(nil, port: 8080, http: false, path: "/api") == [0, 1, 2, 3, 4, 6, 7, 8])
        #expect(Self.visited(nil, port: 5432, http: false) == [2, 3, 7, 8])
    }

    @Test("decisions with the port index agree with the reference evaluation", arguments: ["DENY", "ALLOW", "AUDIT"])
    func decisions(action: String) {
        let workload = Self.workload(action: action)
        var requests: [AuthzRequest] = []
        for port in [8080, 9090, 5432, 70000] {
            for method in ["GET", "DELETE"] {
                for path in ["/", "/x", "/admin/a"] {
                    requests.append(Fixture.http(port: port, method: method, path: path, headers: ["x-a": "1"]))
                    requests.append(Fixture.http(principal: "cluster.local/ns/a/sa/x", port: port, method: method, path: path))
                }
            }
            requests.append(Fixture.tcp(port: port))
        }
        requests.append(
            AuthzRequest(
                transport: .http, source: AuthzRequest.Source(principal: "cluster.local/ns/ns1/sa/a"),
                destination: AuthzRequest.Destination(namespace: "ns1", labels: [:]), method: "GET", path: "/"))
        for request in requests {
            #expect(workload.evaluate(request) == workload.evaluateReference(request), "\(request)")
        }
    }

    @Test("a DENY rule with a port and only HTTP fields otherwise denies TCP to that port alone")
    func denyOnTCP() {
        let engine = Fixture.engine(
            Fixture.policy(
                "p", action: "DENY",
                rules: """
                      - to: [{operation: {ports: ["8080"], paths: ["/admin*"]}}]
                    """))
        let denied = engine.snapshot.evaluate(Fixture.tcp(port: 8080))
        #expect(denied.decision == .deny && denied.policy == "ns1/p" && denied.rule == 0)
        #expect(engine.snapshot.evaluate(Fixture.tcp(port: 5432)).decision == .allow)
        #expect(engine.snapshot.evaluate(Fixture.http(port: 8080, path: "/api")).decision == .allow)
        #expect(engine.snapshot.evaluate(Fixture.http(port: 8080, path: "/admin/x")).decision == .deny)
    }

    @Test("the first DENY policy in order decides even when a later one is filed by port")
    func ordering() {
        let engine = Fixture.engine(
            [
                Fixture.policy("first", action: "DENY", rules: "  - to: [{operation: {paths: [\"/a\"]}}]"),
                Fixture.policy("second", action: "DENY", rules: "  - to: [{operation: {ports: [\"8080\"]}}]"),
                Fixture.policy("third", action: "DENY", rules: "  - to: [{operation: {methods: [\"GET\"]}}]"),
            ].joined(separator: "\n---\n"))
        #expect(engine.snapshot.evaluate(Fixture.http(port: 8080, path: "/a")).policy == "ns1/first")
        #expect(engine.snapshot.evaluate(Fixture.http(port: 8080, path: "/b")).policy == "ns1/second")
        #expect(engine.snapshot.evaluate(Fixture.http(port: 9090, path: "/b")).policy == "ns1/third")
        #expect(engine.snapshot.evaluate(Fixture.http(port: 9090, method: "POST", path: "/b")).decision == .allow)
    }
}

@Suite("request-principal filing of workload programs")
struct RequestPrincipalIndexTests {
    /// Rule positions: 0 request principals; 1 request principals in one `from` entry only;
    /// 2 notRequestPrincipals; 3 request principals and exact methods; 4 request principals and a
    /// port; 5 in every `from` entry, with other fields; 6 nothing.
    private static let rules = """
          - from: [{source: {requestPrincipals: ["https://idp/*"]}}]
          - from: [{source: {requestPrincipals: ["*"]}}, {source: {namespaces: ["a*"]}}]
          - from: [{source: {notRequestPrincipals: ["https://idp/x"]}}]
          - from: [{source: {requestPrincipals: ["*"]}}]
            to: [{operation: {methods: ["GET"]}}]
          - from: [{source: {requestPrincipals: ["*"]}}]
            to: [{operation: {ports: ["8080"]}}]
          - from: [{source: {requestPrincipals: ["a/b"], ipBlocks: ["10.0.0.0/8"]}}, {source: {requestPrincipals: ["c/*"]}}]
          - {}
        """

    private static func engine(action: String) -> PolicyEngine {
        Fixture.engine(
            Fixture.policy("p", action: action, rules: rules)
                + Fixture.requestAuthentication(["{issuer: \"https://idp\", jwksUri: \"https://idp/jwks\"}"]))
    }

    private static func visited(authenticated: Bool, http: Bool = true, method: String = "POST") -> [Int32] {
        let program = engine(action: "DENY").snapshot.workload(namespace: "ns1", labels: [:]).resolved.program
        var cursor = program.enforced.candidates(
            principal: -1, namespace: -1, method: program.identities.methods[method] ?? -1, port: 8080,
            authenticated: authenticated, isHTTP: http, in: program.code)
        var found: [Int32] = []
        while let offset = cursor.next(program.code) { found.append(program.position(ofRuleAt: offset) ?? -1) }
        return found
    }

    @Test("HTTP requests without a request principal skip rules that require one; TCP requests visit them")
    func filing() {
        #expect(Self.visited(authenticated: true) == [0, 1, 2, 4, 5, 6])
        #expect(Self.visited(authenticated: true, method: "GET") == [0, 1, 2, 3, 4, 5, 6])
        #expect(Self.visited(authenticated: false) == [1, 2, 6])
        #expect(Self.visited(authenticated: false, method: "GET") == [1, 2, 3, 6])
        #expect(Self.visited(authenticated: false, http: false) == [0, 1, 2, 3, 4, 5, 6])
    }

    @Test("decisions with and without tokens agree with the reference evaluation", arguments: ["DENY", "ALLOW", "CUSTOM"])
    func decisions(action: String) {
        let snapshot = Self.engine(action: action).snapshot
        let workload = snapshot.workload(namespace: "ns1", labels: [:])
        func token(_ subject: String?) -> JWTOutcome {
            var claims: [String: ClaimValue] = ["iss": .string("https://idp")]
            if let subject { claims["sub"] = .string(subject) }
            return JWTOutcome(present: true, valid: true, claims: .object(claims), requestPrincipal: subject.map { "https://idp/\($0)" })
        }
        var requests: [AuthzRequest] = []
        for jwt in [nil, token("x"), token(nil)] {
            for method in ["GET", "POST"] {
                requests.append(
                    AuthzRequest(
                        transport: .http, source: AuthzRequest.Source(principal: "cluster.local/ns/a/sa/b", ip: "10.1.2.3"),
                        destination: AuthzRequest.Destination(namespace: "ns1", port: 8080), method: method, path: "/",
                        jwt: jwt))
            }
        }
        requests.append(Fixture.tcp(port: 8080, labels: [:]))
        for request in requests {
            let decision = snapshot.evaluate(request)
            #expect(decision == workload.evaluateReference(request), "\(request)")
            #expect(decision == workload.explain(request).decision, "\(request)")
        }
        if action == "DENY" {
            // The accepted token reaches rule 0; without one, rule 1 matches through its namespace
            // entry; on TCP the request-principal check is dropped, so rule 0 matches again.
            #expect(snapshot.evaluate(requests[2]).rule == 0 && snapshot.evaluate(requests[2]).policy == "ns1/p")
            #expect(snapshot.evaluate(requests[0]).rule == 1)
            #expect(snapshot.evaluate(requests[6]).rule == 0)
        }
    }
}

@Suite("path index of workload programs")
struct PathIndexTests {
    /// Rule positions: 0 an exact path; 1 a prefix; 2 a suffix; 3 a prefix and a suffix in one
    /// check; 4 a literal too short to file; 5 a template; 6 notPaths; 7 one `to` entry without
    /// paths; 8 paths in every entry; 9 paths and exact methods (filed by method); 10 `*`; 11 paths
    /// and a port; 12 two prefixes of different lengths.
    private static let rules = """
          - to: [{operation: {paths: ["/healthz"]}}]
          - to: [{operation: {paths: ["/api/v2*"]}}]
          - to: [{operation: {paths: ["*.php"]}}]
          - to: [{operation: {paths: ["/admin*", "*/.env"]}}]
          - to: [{operation: {paths: ["/a*"]}}]
          - to: [{operation: {paths: ["/v1/{*}/x"]}}]
          - to: [{operation: {notPaths: ["/healthz"]}}]
          - to: [{operation: {paths: ["/metrics"]}}, {operation: {ports: ["9090"]}}]
          - to: [{operation: {paths: ["/metrics"]}}, {operation: {paths: ["/stats/*"]}}]
          - to: [{operation: {paths: ["/debug/*"], methods: ["GET"]}}]
          - to: [{operation: {paths: ["*"]}}]
          - to: [{operation: {paths: ["/internal*"], ports: ["8080"]}}]
          - to: [{operation: {paths: ["/static/images/*", "/favicon.ico"]}}]
        """

    private static func workload(action: String = "DENY") -> WorkloadPolicies {
        Fixture.engine(Fixture.policy("p", action: action, rules: rules)).snapshot.workload(namespace: "ns1", labels: [:])
    }

    /// The positions of the rules an HTTP POST to port 8080 with this normalized path visits.
    private static func visited(_ path: String?) -> [Int32] {
        let program = workload().resolved.program
        var cursor = program.enforced.candidates(
            principal: -1, namespace: -1, method: program.identities.methods["POST"] ?? -1, port: 8080, path: path,
            isHTTP: true, in: program.code)
        var found: [Int32] = []
        while let offset = cursor.next(program.code) { found.append(program.position(ofRuleAt: offset) ?? -1) }
        return found
    }

    /// Rules every HTTP POST visits: those filed neither by path nor by method.
    private static let unfiled: [Int32] = [4, 5, 6, 7, 10]

    /// The unfiled rules with `filed`, in rule order.
    private static func with(_ filed: Int32) -> [Int32] { (unfiled + [filed]).sorted() }

    @Test("an HTTP request visits the rules filed under its path's start and end, and the unfiled ones")
    func visits() {
        #expect(Self.visited("/healthz") == Self.with(0))
        #expect(Self.visited("/api/v2/users") == Self.with(1))
        #expect(Self.visited("/index.php") == Self.with(2))
        #expect(Self.visited("/admin/users") == Self.with(3))
        #expect(Self.visited("/app/.env") == Self.with(3))
        #expect(Self.visited("/metrics") == Self.with(8))
        #expect(Self.visited("/stats/cpu") == Self.with(8))
        #expect(Self.visited("/internal/x") == Self.with(11))
        #expect(Self.visited("/favicon.ico") == Self.with(12))
        #expect(Self.visited("/static/images/logo.png") == Self.with(12))
        #expect(Self.visited("/other/page") == Self.unfiled)
        #expect(Self.visited("/x") == Self.unfiled)
        #expect(Self.visited(nil) == Self.unfiled)
    }

    @Test("only positive path checks of exact, prefix and suffix literals of four bytes or more file a rule")
    func filing() {
        let program = Self.workload().resolved.program
        let positions = (program.enforced.wild.lower..<program.enforced.wild.upper).map {
            program.position(ofRuleAt: Int32(bitPattern: program.code.word($0))) ?? -1
        }
        #expect(positions == Self.unfiled)
        #expect(program.enforced.pathKeys == PathKeys(prefixes: [Array("/admin".utf8)], suffixes: [Array(".php".utf8)]))
    }

    @Test("decisions with the path index agree with the reference evaluation", arguments: ["DENY", "ALLOW", "AUDIT"])
    func decisions(action: String) {
        let workload = Self.workload(action: action)
        let paths = [
            "/healthz", "/healthz?probe=1", "/HEALTHZ", "/api/v2", "/api/v2/x", "/api/v1/../v2/x", "/api%2Fv2/x",
            "/api//v2/x", "/index.php", "/a/b.php?x=1", "/admin", "/admin/", "/x/.env", "/x/.ENV", "/a", "/", "",
            "/v1/y/x", "/metrics", "/stats/a", "/debug/x", "/internal", "/favicon.ico", "/static/images/a.png",
            "/static/image", "a", "/abc",
        ]
        var requests: [AuthzRequest] = []
        for path in paths {
            for method in ["GET", "POST"] {
                for port in [8080, 9090] {
                    requests.append(Fixture.http(port: port, method: method, path: path))
                }
            }
        }
        requests.append(Fixture.tcp(port: 8080))
        requests.append(Fixture.tcp(port: 9090))
        requests.append(
            AuthzRequest(
                transport: .http, source: AuthzRequest.Source(principal: "cluster.local/ns/ns1/sa/a"),
                destination: AuthzRequest.Destination(namespace: "ns1", port: 8080), method: "GET"))
        for request in requests {
            #expect(workload.evaluate(request) == workload.evaluateReference(request), "\(request)")
        }
    }
}

@Suite("address index of workload programs")
struct AddressIndexTests {
    /// Rule positions: 0 two source blocks; 1 two remote blocks, one of a /10; 2 a source block
    /// too wide to file; 3 notIpBlocks; 4 an IPv6 block; 5 a source block in one entry and a
    /// remote block in the other; 6 a source block in one entry and none in the other; 7 a single
    /// address; 8 an IPv4-mapped IPv6 block; 9 source blocks with a port (filed by address on
    /// both transports); 10 a source /8.
    private static let rules = """
          - from: [{source: {ipBlocks: ["192.0.2.0/24", "198.51.100.0/24"]}}]
          - from: [{source: {remoteIpBlocks: ["203.0.113.0/24", "100.64.0.0/10"]}}]
          - from: [{source: {ipBlocks: ["0.0.0.0/0"]}}]
          - from: [{source: {notIpBlocks: ["10.0.0.0/8"]}}]
          - from: [{source: {ipBlocks: ["2001:db8::/32"]}}]
          - from: [{source: {ipBlocks: ["192.0.2.0/24"]}}, {source: {remoteIpBlocks: ["203.0.113.0/24"]}}]
          - from: [{source: {ipBlocks: ["192.0.2.0/24"]}}, {source: {namespaces: ["ns*"]}}]
          - from: [{source: {ipBlocks: ["10.1.2.3"]}}]
          - from: [{source: {ipBlocks: ["::ffff:192.0.2.0/120"]}}]
          - from: [{source: {ipBlocks: ["198.51.100.7/32"]}}]
            to: [{operation: {ports: ["8080"]}}]
          - from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]
        """

    private static func workload(action: String = "DENY") -> WorkloadPolicies {
        Fixture.engine(Fixture.policy("p", action: action, rules: rules)).snapshot.workload(namespace: "ns1", labels: [:])
    }

    /// The positions of the rules a request from these addresses visits.
    private static func visited(_ source: String?, remote: String? = nil, http: Bool = true) -> [Int32] {
        let program = workload().resolved.program
        let sourceAddress = source.flatMap(IPAddress.init)
        var cursor = program.enforced.candidates(
            principal: -1, namespace: -1, method: -1, port: 8080, source: sourceAddress,
            remote: remote.flatMap(IPAddress.init) ?? sourceAddress, isHTTP: http, in: program.code)
        var found: [Int32] = []
        while let offset = cursor.next(program.code) { found.append(program.position(ofRuleAt: offset) ?? -1) }
        return found
    }

    /// Rules every request visits: those that some address outside their blocks could still match.
    private static let unfiled: [Int32] = [2, 3, 6]

    /// The unfiled rules with `filed`, in rule order.
    private static func with(_ filed: Int32...) -> [Int32] { (unfiled + filed).sorted() }

    @Test("a request visits the rules filed under its source and remote addresses, and the unfiled ones")
    func visits() {
        #expect(Self.visited("192.0.2.9") == Self.with(0, 5))
        #expect(Self.visited("10.4.1.2") == Self.with(7, 10))
        #expect(Self.visited("10.4.1.2", remote: "203.0.113.5") == Self.with(1, 5, 7, 10))
        #expect(Self.visited("10.4.1.2", remote: "100.127.0.1") == Self.with(1, 7, 10))
        #expect(Self.visited("198.51.100.7") == Self.with(0, 9))
        #expect(Self.visited("2001:db8::1") == Self.with(4))
        #expect(Self.visited("::ffff:192.0.2.1") == Self.with(8))
        #expect(Self.visited("172.16.0.1") == Self.unfiled)
        #expect(Self.visited("not-an-address") == Self.unfiled)
        #expect(Self.visited(nil) == Self.unfiled)
        #expect(Self.visited("198.51.100.7", http: false) == Self.with(0, 9))
        #expect(Self.visited("172.16.0.1", http: false) == Self.unfiled)
    }

    @Test("only positive source or remote block checks of /8 and longer (IPv6 /16) file a rule")
    func filing() {
        let program = Self.workload().resolved.program
        for wild in [program.enforced.wild, program.enforced.wildTCP] {
            let positions = (wild.lower..<wild.upper).map {
                program.position(ofRuleAt: Int32(bitPattern: program.code.word($0))) ?? -1
            }
            #expect(positions == Self.unfiled)
        }
        #expect(RuleGroup.addressID(of: IPBlock("100.64.0.0/10")!) == 100)
        #expect(RuleGroup.addressID(of: IPBlock("1.0.0.0/7")!) == nil)
        #expect(RuleGroup.addressID(of: IPBlock("2001:db8::/32")!) == Int32(256 + 0x2001))
        #expect(RuleGroup.addressID(of: IPBlock("2001::/15")!) == nil)
        #expect(RuleGroup.addressID(IPAddress("::ffff:192.0.2.1")!) == 256)
    }

    @Test("an address's id read from its text is the id of the parsed address; unparsable text gets -1 or a harmless id")
    func textIDs() {
        for text in ["0.0.0.0", "9.1.2.3", "10.4.1.2", "192.0.2.9", "255.255.255.255", "2001:db8::1", "::1", "::ffff:10.1.2.3", "fe80::1"] {
            #expect(RuleGroup.addressID(text: text) == RuleGroup.addressID(IPAddress(text)!), "\(text)")
        }
        for text in ["", "bad", "256.1.2.3", "1234.1.2.3", "12345", ":::"] {
            #expect(RuleGroup.addressID(text: text) == -1, "\(text)")
        }
        // Starts like an IPv4 address: keyed by its first octet, and still matched by no block.
        #expect(RuleGroup.addressID(text: "10.1.2") == 10)
    }

    @Test("decisions with the address index agree with the reference evaluation", arguments: ["DENY", "ALLOW", "AUDIT"])
    func decisions(action: String) {
        let workload = Self.workload(action: action)
        let addresses: [String?] = [
            nil, "192.0.2.9", "192.0.3.9", "198.51.100.7", "198.51.100.8", "203.0.113.5", "100.64.0.1", "100.127.255.255",
            "100.128.0.1", "10.1.2.3", "10.1.2.4", "10.200.0.1", "11.0.0.1", "2001:db8::1", "2001:db9::1",
            "::ffff:192.0.2.1", "::ffff:10.1.2.3", "0.0.0.0", "255.255.255.255", "::", "192.0.2", "bad", "",
        ]
        var requests: [AuthzRequest] = []
        for source in addresses {
            for remote in [nil, "203.0.113.5", "10.1.2.3", "2001:db8::2"] {
                for transport in [AuthzRequest.TransportProtocol.http, .tcp] {
                    for port in [8080, 9090] {
                        requests.append(
                            AuthzRequest(
                                transport: transport,
                                source: AuthzRequest.Source(
                                    principal: "cluster.local/ns/ns1/sa/a", ip: source, remoteIP: remote),
                                destination: AuthzRequest.Destination(namespace: "ns1", port: port), method: "GET",
                                path: "/"))
                    }
                }
            }
        }
        for request in requests {
            #expect(workload.evaluate(request) == workload.evaluateReference(request), "\(request)")
        }
    }
}
