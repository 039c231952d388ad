import Foundation
import Testing

@testable import RampartPolicy

/// Random meshes over a small vocabulary, so that the rules overlap and collide: exact, prefix,
/// suffix and `*` forms of the same literals, path templates, negations, several `from`, `to` and
/// `when` entries (peers, service accounts, trust domains, addresses, headers, claims, audiences,
/// SNI), every action (CUSTOM with the ext-authz answer the request gives), selectors and
/// root-namespace policies, and PeerAuthentications at every level. The fast path's indexes
/// (rules filed by principal, path, header literal, method and port, with Bloom filters in the
/// rule headers) must never change a decision: each random request is decided on the fast path,
/// by the reference evaluation, by the explanation and by the resolved workload, and the four must
/// agree in full.
@Suite("fast path against the reference on random meshes")
struct RandomPolicyDifferentialTests {
    @Test("random policies and random requests decide alike on every path", arguments: Array(UInt64(1)...UInt64(8)))
    func randomMeshes(seed: UInt64) {
        var generator = RandomMesh(seed: seed)
        var disagreements: [String] = []
        var evaluated = 0
        var outcomes: [Int: Int] = [:]
        for _ in 0..<60 {
            let yaml = generator.mesh()
            let snapshot = PolicyEngine(yaml: yaml).snapshot
            for _ in 0..<60 {
                let object = generator.request()
                guard let request = try? AuthzRequest(object: object) else { continue }
                evaluated += 1
                let workload = snapshot.workload(namespace: request.destination.namespace, labels: request.destination.labels)
                let fast = snapshot.evaluate(request)
                let reference = workload.evaluateReference(request)
                let explained = workload.explain(request).decision
                let resolved = workload.evaluate(request)
                outcomes[fast.status, default: 0] += 1
                if fast != reference || fast != explained || fast != resolved, disagreements.count < 3 {
                    disagreements.append(
                        "request \(object)\nfast \(fast.status) \(fast.policy ?? "-") \(fast.reason)\nreference \(reference.status) \(reference.policy ?? "-") \(reference.reason)\nexplained \(explained.status), resolved workload \(resolved.status)\nmesh:\n\(yaml)")
                }
            }
        }
        #expect(evaluated > 3000, "most random requests should be readable: \(evaluated)")
        // The vocabulary is meant to reach both outcomes often; a generator that stopped doing so
        // would test little.
        #expect((outcomes[200] ?? 0) > evaluated / 10 && (outcomes[403] ?? 0) > evaluated / 10, "\(outcomes)")
        #expect(disagreements.isEmpty, "\(disagreements.first ?? "")")
    }
}

/// Writes random Istio YAML and random request objects (the request file's schema) from one
/// shared vocabulary.
private struct RandomMesh {
    var random: SeededGenerator
    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    static let principals = ["cluster.local/ns/ns1/sa/a", "cluster.local/ns/ns1/sa/ab", "cluster.local/ns/ns2/sa/a", "other.td/ns/ns1/sa/a"]
    static let principalPatterns = principals + ["cluster.local/ns/ns1/*", "*/sa/a", "*", "cluster.local/*", "*/ns/ns2/sa/a", "*a"]
    static let namespaces = ["ns1", "ns2", "ns3"]
    static let namespacePatterns = namespaces + ["ns*", "*2", "*"]
    static let paths = ["/a", "/a/b", "/admin", "/admin/users", "/api/v1/items", "/api/v2/items/7", "/b", "/", "/ADMIN", "/a/b/c"]
    static let requestPaths = paths + [
        "/a//b", "/a/%2Fb", "/x/../admin", "/a?q=/admin", "/admin/", "/admin%2Fusers", "/api/v1/items/", "/A", "/a\\b", "/./admin",
    ]
    static let pathPatterns = paths + ["/admin*", "*/items", "*", "/api/*", "/a*", "/api/{*}/items", "/api/{**}", "/{**}/items", "*/b"]
    static let methods = ["GET", "POST", "DELETE", "PUT"]
    static let hosts = ["example.com", "api.example.com", "EXAMPLE.COM", "other.org"]
    static let hostPatterns = hosts + ["*.example.com", "api.*", "*", "*.org"]
    static let ports = [80, 8080, 9090]
    static let ips = ["10.0.0.1", "10.1.2.3", "192.168.1.9", "::1", "2001:db8::5"]
    static let ipPatterns = ["10.0.0.0/8", "10.0.0.1", "192.168.0.0/16", "::1/128", "2001:db8::/32", "10.1.2.3/32"]
    static let userValues = ["alice", "bob", "admin-tenant", "tenant-admin", "x"]
    static let userPatterns = userValues + ["admin*", "*admin", "*", "tenant-*", "ali*"]
    static let issuers = ["iss1", "iss2"]
    static let requestPrincipalPatterns = ["iss1/alice", "iss1/*", "*/bob", "*", "iss2/alice"]
    static let groups = ["dev", "ops", "admin"]
    static let serviceAccounts = ["ns1/a", "ns2/a", "ns1/ab", "cluster.local/ns/ns1/sa/a"]
    static let trustDomains = ["cluster.local", "other.td", "*"]
    static let audiences = ["api", "web", "api*", "*"]

    mutating func some(_ items: [String], upTo count: Int = 3) -> [String] {
        (0...random.index(count)).map { _ in random.pick(items) }
    }

    func list(_ items: [String]) -> String {
        "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
    }

    /// The fields of a rule's `source`, each with the values it draws from.
    static let sourceFields: [(name: String, values: [String])] = [
        ("principals", principalPatterns), ("notPrincipals", principalPatterns), ("namespaces", namespacePatterns),
        ("notNamespaces", namespacePatterns), ("ipBlocks", ipPatterns), ("notIpBlocks", ipPatterns),
        ("requestPrincipals", requestPrincipalPatterns), ("notRequestPrincipals", requestPrincipalPatterns),
        ("remoteIpBlocks", ipPatterns), ("notRemoteIpBlocks", ipPatterns), ("serviceAccounts", serviceAccounts),
        ("notServiceAccounts", serviceAccounts), ("trustDomains", trustDomains),
    ]
    /// The fields of a rule's `operation`; paths come twice, as rules name them most.
    static let operationFields: [(name: String, values: [String])] = [
        ("paths", pathPatterns), ("paths", pathPatterns), ("notPaths", pathPatterns), ("methods", methods + ["GET", "*"]),
        ("notMethods", methods), ("hosts", hostPatterns), ("ports", ports.map(String.init)), ("notPorts", ports.map(String.init)),
    ]

    /// One `from` or `to` entry: `{kind: {...}}` with one to three of `fields`.
    mutating func entry(_ kind: String, _ fields: [(name: String, values: [String])]) -> String {
        let chosen = (0...random.index(2)).map { _ -> String in
            let field = random.pick(fields)
            return "\(field.name): \(list(some(field.values)))"
        }
        return "{\(kind): {\(chosen.joined(separator: ", "))}}"
    }

    mutating func condition() -> String {
        let negated = random.chance(0.25)
        let key: String
        let values: [String]
        switch random.index(16) {
        case 8: (key, values) = ("request.auth.audiences", some(Self.audiences))
        case 9: (key, values) = ("request.auth.presenter", some(["web", "cli", "*"]))
        case 10: (key, values) = ("connection.sni", some(Self.hostPatterns))
        case 11: (key, values) = ("remote.ip", some(Self.ipPatterns))
        case 12: (key, values) = ("destination.ip", some(Self.ipPatterns))
        case 13: (key, values) = ("source.serviceAccount", some(Self.serviceAccounts))
        case 14: (key, values) = ("request.headers[x-tenant]", some(["tenant-1234", "tenant-*", "*-1234", "*"]))
        case 15: (key, values) = ("request.auth.claims[org][team]", some(["red", "blue", "*"]))
        case 0, 1: (key, values) = ("request.headers[x-user]", some(Self.userPatterns))
        case 2: (key, values) = ("source.namespace", some(Self.namespacePatterns))
        case 3: (key, values) = ("source.principal", some(Self.principalPatterns))
        case 4: (key, values) = ("request.auth.claims[groups]", some(Self.groups + ["*"]))
        case 5: (key, values) = ("destination.port", some(Self.ports.map(String.init)))
        case 6: (key, values) = ("source.ip", some(Self.ipPatterns))
        default: (key, values) = ("request.auth.principal", some(Self.requestPrincipalPatterns))
        }
        return "{key: \"\(key)\", \(negated ? "notValues" : "values"): \(list(values))}"
    }

    mutating func rule() -> String {
        var parts: [String] = []
        if random.chance(0.6) { parts.append("from: [" + (0...random.index(2)).map { _ in entry("source", Self.sourceFields) }.joined(separator: ", ") + "]") }
        if random.chance(0.7) { parts.append("to: [" + (0...random.index(2)).map { _ in entry("operation", Self.operationFields) }.joined(separator: ", ") + "]") }
        if random.chance(0.3) { parts.append("when: [" + (0...random.index(2)).map { _ in condition() }.joined(separator: ", ") + "]") }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    mutating func authorizationPolicy(_ index: Int) -> String {
        let namespace = random.chance(0.2) ? "istio-system" : random.pick(Self.namespaces)
        let action = random.pick(["ALLOW", "ALLOW", "DENY", "DENY", "AUDIT", "CUSTOM"])
        var spec = ["action: \(action)"]
        if action == "CUSTOM" { spec.append("provider: {name: \(random.pick(["ext-a", "ext-b"]))}") }
        if random.chance(0.6) { spec.append("selector: {matchLabels: {app: \(random.pick(["a", "b"]))}}") }
        if random.chance(0.05) {
            spec = random.chance(0.5) ? [] : ["selector: {matchLabels: {app: b}}"]
        } else {
            spec.append("rules: [" + (0...random.index(3)).map { _ in rule() }.joined(separator: ", ") + "]")
        }
        let dryRun = random.chance(0.1) ? ", annotations: {istio.io/dry-run: \"true\"}" : ""
        return """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p\(index), namespace: \(namespace)\(dryRun)}
            spec: {\(spec.joined(separator: ", "))}
            """
    }

    mutating func peerAuthentication(_ index: Int) -> String {
        let namespace = random.chance(0.3) ? "istio-system" : random.pick(Self.namespaces)
        let mode = random.pick(["STRICT", "PERMISSIVE", "DISABLE", "UNSET"])
        var spec = ["mtls: {mode: \(mode)}"]
        if random.chance(0.5) {
            spec.append("selector: {matchLabels: {app: \(random.pick(["a", "b"]))}}")
            if random.chance(0.5) {
                spec.append("portLevelMtls: {\(random.pick(Self.ports)): {mode: \(random.pick(["STRICT", "PERMISSIVE", "DISABLE"]))}}")
            }
        }
        return """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: pa\(index), namespace: \(namespace)}
            spec: {\(spec.joined(separator: ", "))}
            """
    }

    mutating func mesh() -> String {
        var documents: [String] = []
        for index in 0..<(1 + random.index(8)) { documents.append(authorizationPolicy(index)) }
        for index in 0..<random.index(3) { documents.append(peerAuthentication(index)) }
        return documents.joined(separator: "\n---\n")
    }

    mutating func request() -> [String: Any] {
        var source: [String: Any] = ["ip": random.pick(Self.ips)]
        if random.chance(0.8) {
            let principal = random.pick(Self.principals)
            source["principal"] = principal
            source["namespace"] = String(principal.split(separator: "/")[2])
        }
        if random.chance(0.3) { source["remote_ip"] = random.pick(Self.ips) }
        var labels: [String: String] = ["app": random.pick(["a", "b", "c"])]
        if random.chance(0.1) { labels["istio"] = "ingressgateway" }
        var destination: [String: Any] = ["namespace": random.pick(Self.namespaces), "labels": labels, "port": random.pick(Self.ports)]
        var request: [String: Any] = [
            "protocol": random.chance(0.15) ? "TCP" : "HTTP",
            "source": source,
            "destination": destination,
            "method": random.pick(Self.methods),
            "host": random.pick(Self.hosts),
            "path": random.pick(Self.requestPaths),
        ]
        var headers: [String: Any] = [:]
        if random.chance(0.5) { headers["x-user"] = random.pick(Self.userValues) }
        if random.chance(0.3) { headers["x-tenant"] = random.pick(["tenant-1234", "tenant-9", "x-1234", "TENANT-1234"]) }
        if random.chance(0.1) { headers["x-user"] = [random.pick(Self.userValues), random.pick(Self.userValues)] }
        if !headers.isEmpty { request["headers"] = headers }
        if random.chance(0.3) { request["sni"] = random.pick(Self.hosts) }
        if random.chance(0.5) { request["ext_authz"] = random.pick(["allow", "deny"]) }
        if random.chance(0.3) { destination["ip"] = random.pick(Self.ips) }
        request["destination"] = destination
        if random.chance(0.4) {
            let issuer = random.pick(Self.issuers)
            let subject = random.pick(["alice", "bob"])
            request["jwt"] = [
                "present": true, "valid": random.chance(0.9),
                "claims": [
                    "iss": issuer, "sub": subject, "groups": some(Self.groups, upTo: 2), "aud": some(["api", "web", "apix"], upTo: 1),
                    "azp": random.pick(["web", "cli"]), "org": ["team": random.pick(["red", "blue"])],
                ] as [String: Any],
            ] as [String: Any]
        }
        return request
    }
}
