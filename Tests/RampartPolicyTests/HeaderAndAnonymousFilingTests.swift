import Testing

@testable import RampartPolicy

@Suite("filing of rules for peers without a principal")
struct AnonymousFilingTests {
    /// Rule positions: 0 notPrincipals `*` with write methods; 1 notPrincipals `*` alone; 2
    /// notPrincipals `*` in one `from` entry only; 3 notPrincipals of one principal; 4 notPrincipals
    /// `*` and a namespace in every entry; 5 an exact principal.
    private static let rules = """
          - from: [{source: {notPrincipals: ["*"]}}]
            to: [{operation: {methods: ["POST", "PUT", "DELETE"]}}]
          - from: [{source: {notPrincipals: ["*"]}}]
          - from: [{source: {notPrincipals: ["*"]}}, {source: {namespaces: ["ns2"]}}]
          - from: [{source: {notPrincipals: ["cluster.local/ns/ns2/sa/a"]}}]
          - from: [{source: {notPrincipals: ["cluster.local/ns/x/sa/y", "*"], namespaces: ["ns*"]}}]
          - from: [{source: {principals: ["cluster.local/ns/ns2/sa/a"]}}]
        """

    private static func workload(action: String = "DENY", mode: String? = nil) -> WorkloadPolicies {
        var yaml = Fixture.policy("p", action: action, rules: rules)
        if let mode {
            yaml += """

                ---
                apiVersion: security.istio.io/v1
                kind: PeerAuthentication
                metadata: {name: default, namespace: ns1}
                spec:
                  mtls: {mode: \(mode)}
                  portLevelMtls: {"9090": {mode: DISABLE}}
                """
        }
        return Fixture.engine(yaml).snapshot.workload(namespace: "ns1", labels: [:])
    }

    /// The positions of the rules an HTTP POST to port 8080 visits, from a peer with this principal
    /// id (`RuleGroup.anonymous` for none).
    private static func visited(principal: Int32) -> [Int32] {
        let program = workload().resolved.program
        var cursor = program.enforced.candidates(
            principal: principal, namespace: -1, method: program.identities.methods["POST"] ?? -1, port: 8080,
            isHTTP: true, in: program.code)
        var found: [Int32] = []
        while let offset = cursor.next(program.code) { found.append(program.position(ofRuleAt: offset) ?? -1) }
        return found
    }

    @Test("rules requiring a peer without a principal are visited only by requests without one")
    func visits() {
        let program = Self.workload().resolved.program
        let known = program.principalIDs["cluster.local/ns/ns2/sa/a"] ?? -9
        #expect(Self.visited(principal: RuleGroup.anonymous) == [0, 1, 2, 3, 4])
        #expect(Self.visited(principal: known) == [2, 3, 5])
        #expect(Self.visited(principal: -1) == [2, 3])
    }

    @Test("the anonymous id is found in a principal list long enough to have a run table")
    func longList() {
        // Twelve rules filed by exact principals and two for peers without one: fourteen pairs.
        let named = (0..<12).map { "  - from: [{source: {principals: [\"cluster.local/ns/ns2/sa/p\($0)\"]}}]" }
        let anonymous = [
            "  - from: [{source: {notPrincipals: [\"*\"]}}]",
            "  - from: [{source: {notPrincipals: [\"*\"]}}]\n    to: [{operation: {methods: [\"GET\"]}}]",
        ]
        let rules = (named + anonymous).joined(separator: "\n")
        let workload = Fixture.engine(Fixture.policy("p", action: "DENY", rules: rules))
            .snapshot.workload(namespace: "ns1", labels: [:])
        let program = workload.resolved.program
        #expect(program.enforced.byPrincipal.count == 14)
        let run = RuleGroup.bucket(program.enforced.byPrincipal, RuleGroup.anonymous, program.code).map {
            program.position(ofRuleAt: Int32(bitPattern: program.code.word($0))) ?? -1
        }
        #expect(run == [12, 13])
        let plaintext = AuthzRequest(
            transport: .http, source: AuthzRequest.Source(ip: "10.0.0.1", mtls: false),
            destination: AuthzRequest.Destination(namespace: "ns1", port: 8080), method: "POST", path: "/")
        #expect(workload.evaluate(plaintext).rule == 12)
        let named5 = Fixture.http(principal: "cluster.local/ns/ns2/sa/p5")
        #expect(workload.evaluate(named5).rule == 5)
        let other = Fixture.http(principal: "cluster.local/ns/ns2/sa/other")
        #expect(workload.evaluate(other).decision == .allow)
        for request in [plaintext, named5, other] {
            #expect(workload.evaluate(request) == workload.evaluateReference(request))
        }
    }

    @Test("decisions with and without a peer principal agree with the reference evaluation",
        arguments: ["DENY", "ALLOW", "AUDIT"])
    func decisions(action: String) {
        for mode in [nil, "STRICT", "PERMISSIVE", "DISABLE"] {
            let workload = Self.workload(action: action, mode: mode)
            var requests: [AuthzRequest] = []
            for principal in [nil, "", "cluster.local/ns/ns2/sa/a", "cluster.local/ns/x/sa/y", "spiffe-less"] {
                for method in ["GET", "POST"] {
                    for port in [8080, 9090] {
                        requests.append(Fixture.http(principal: principal, port: port, method: method))
                        requests.append(
                            AuthzRequest(
                                transport: .http, source: AuthzRequest.Source(ip: "10.0.0.1", mtls: false),
                                destination: AuthzRequest.Destination(namespace: "ns1", port: port), method: method,
                                path: "/"))
                    }
                }
                requests.append(Fixture.tcp(principal: principal, port: 8080))
                requests.append(Fixture.tcp(principal: principal, port: 9090))
            }
            for request in requests {
                #expect(workload.evaluate(request) == workload.evaluateReference(request), "\(mode ?? "none") \(request)")
            }
            let plaintext = AuthzRequest(
                transport: .http, source: AuthzRequest.Source(ip: "10.0.0.1", mtls: false),
                destination: AuthzRequest.Destination(namespace: "ns1", port: 9090), method: "POST", path: "/")
            if action == "DENY" && mode != "STRICT" {
                #expect(workload.evaluate(plaintext).decision == .deny && workload.evaluate(plaintext).rule == 0)
            }
        }
    }
}

@Suite("header index of workload programs")
struct HeaderIndexTests {
    /// Rule positions: 0 user-agent prefixes and a suffix, with a port; 1 an exact user-agent;
    /// 2 a literal too short to file; 3 `*`; 4 notValues; 5 x-tenant (the second header indexed,
    /// with a port); 6 x-canary (a third header, no port: wild); 7 user-agent and a path (filed by
    /// path); 8 presence only (`*`) and an exact user-agent in a second condition; 9 x-debug (a
    /// fourth header, with a port: filed by port).
    private static let rules = """
          - to: [{operation: {ports: ["8080"]}}]
            when: [{key: "request.headers[user-agent]", values: ["sqlmap*", "*nikto", "masscan*"]}]
          - when: [{key: "request.headers[user-agent]", values: ["curl/8.5.0"]}]
          - when: [{key: "request.headers[user-agent]", values: ["go*"]}]
          - when: [{key: "request.headers[user-agent]", values: ["*"]}]
          - when: [{key: "request.headers[user-agent]", notValues: ["sqlmap*"]}]
          - to: [{operation: {ports: ["8080"]}}]
            when: [{key: "request.headers[x-tenant]", values: ["tenant-a"]}]
          - when: [{key: "request.headers[x-canary]", values: ["true"]}]
          - to: [{operation: {paths: ["/admin*"]}}]
            when: [{key: "request.headers[user-agent]", values: ["sqlmap*"]}]
          - when: [{key: "request.headers[x-canary]", values: ["*"]}, {key: "request.headers[user-agent]", values: ["wget/1.21"]}]
          - to: [{operation: {ports: ["8080"]}}]
            when: [{key: "request.headers[x-debug]", values: ["enabled"]}]
        """

    private static func workload(action: String = "DENY") -> WorkloadPolicies {
        Fixture.engine(Fixture.policy("p", action: action, rules: rules)).snapshot.workload(namespace: "ns1", labels: [:])
    }

    /// The positions of the rules an HTTP GET of `/` to `port` with this user-agent and x-tenant visits.
    private static func visited(_ agent: String?, tenant: String? = nil, port: Int = 9090) -> [Int32] {
        let program = workload().resolved.program
        var cursor = program.enforced.candidates(
            principal: -1, namespace: -1, method: -1, port: port, path: "/", headers: (agent, tenant), isHTTP: true,
            in: program.code)
        var found: [Int32] = []
        while let offset = cursor.next(program.code) { found.append(program.position(ofRuleAt: offset) ?? -1) }
        return found
    }

    /// Rules every HTTP request to port 9090 visits: those filed by nothing.
    private static let unfiled: [Int32] = [2, 3, 4, 6]

    @Test("a request visits the rules filed under its header value's start and end, and the unfiled ones")
    func visits() {
        #expect(Self.visited("sqlmap/1.7") == [0] + Self.unfiled)
        #expect(Self.visited("masscan/1.3") == [0] + Self.unfiled)
        #expect(Self.visited("scanner-nikto") == [0] + Self.unfiled)
        #expect(Self.visited("curl/8.5.0") == (Self.unfiled + [1]).sorted())
        #expect(Self.visited("wget/1.21") == Self.unfiled + [8])
        #expect(Self.visited("envoy-client/1.29") == Self.unfiled)
        #expect(Self.visited("") == Self.unfiled)
        #expect(Self.visited(nil) == Self.unfiled)
        #expect(Self.visited("envoy", tenant: "tenant-a") == [2, 3, 4, 5, 6])
        #expect(Self.visited("sqlmap", tenant: "tenant-a") == [0, 2, 3, 4, 5, 6])
        #expect(Self.visited("envoy", tenant: "tenant-b") == Self.unfiled)
        // x-debug's rule falls back to its port, x-canary's to the wild rules.
        #expect(Self.visited("envoy", port: 8080) == [2, 3, 4, 6, 9])
    }

    @Test("two headers per group: those the most rules can be filed by, with their literals' shortest lengths")
    func filing() {
        let program = Self.workload().resolved.program
        let group = program.enforced
        let (first, second) = group.headers
        #expect(first.slot >= 0 && program.headerNames[Int(first.slot)].name == "user-agent")
        #expect(first.keys == PathKeys(prefixes: [Array("sqlmap".utf8)], suffixes: [Array("nikto".utf8)]))
        #expect(second.slot >= 0 && program.headerNames[Int(second.slot)].name == "x-tenant")
        #expect(second.keys == PathKeys(prefixes: [Array("tenant-a".utf8)], suffixes: []))
        let wild = (group.wild.lower..<group.wild.upper).map {
            program.position(ofRuleAt: Int32(bitPattern: program.code.word($0))) ?? -1
        }
        #expect(wild == Self.unfiled)
    }

    @Test("decisions with the header index agree with the reference evaluation", arguments: ["DENY", "ALLOW", "AUDIT"])
    func decisions(action: String) {
        let workload = Self.workload(action: action)
        let agents: [String?] = [
            nil, "", "sqlmap", "sqlmap/1.7", "SQLMAP/1.7", "xsqlmap", "nikto", "a nikto", "niktox", "masscan",
            "curl/8.5.0", "curl/8.5.0 ", "curl/8.5", "go", "gopher", "wget/1.21", "envoy-client/1.29",
        ]
        var requests: [AuthzRequest] = []
        for agent in agents {
            for extra in [
                [:], ["x-tenant": "tenant-a"], ["x-canary": "true"], ["x-canary": "", "x-tenant": "tenant-b"],
                ["x-debug": "enabled"], ["x-debug": "enabled!", "x-tenant": "tenant-a"],
            ] {
                for port in [8080, 9090] {
                    var headers = extra
                    if let agent { headers["user-agent"] = agent }
                    requests.append(Fixture.http(port: port, path: "/", headers: headers))
                    requests.append(Fixture.http(port: port, path: "/admin/x", headers: headers))
                }
            }
        }
        requests.append(Fixture.tcp(port: 8080))
        requests.append(Fixture.tcp(port: 9090))
        for request in requests {
            #expect(workload.evaluate(request) == workload.evaluateReference(request), "\(request)")
        }
    }
}
