/// Draws requests over a synthetic mesh: mostly expected callers on the API, plus strangers,
/// ingress and monitoring traffic, plaintext peers, scanners, admin probes, tokens and TCP.
struct SyntheticRequests {
    let topology: SyntheticTopology

    func draw(_ count: Int, random: inout SeededGenerator) -> [AuthzRequest] {
        (0..<count).map { _ in request(random: &random) }
    }

    private func request(random: inout SeededGenerator) -> AuthzRequest {
        let target = random.pick(topology.workloads)
        let source = self.source(for: target, random: &random)
        let roll = random.index(100)
        if roll < 5 {
            return AuthzRequest(
                transport: .tcp, source: source,
                destination: destination(target, port: 5432, random: &random), sni: target.host)
        }
        let port = roll < 12 ? 9090 : 8080
        let methodRoll = random.index(100)
        let method = methodRoll < 60 ? "GET" : methodRoll < 85 ? "POST" : methodRoll < 95 ? "PUT" : "DELETE"
        var headers = [
            "user-agent": random.chance(0.02) ? "sqlmap/1.7" : "envoy-client/1.29",
            "x-request-id": "\(random.next() & 0xffff_ffff)",
        ]
        if random.chance(0.3) { headers["x-tenant"] = random.chance(0.7) ? "tenant-shared" : "tenant-other" }
        if random.chance(0.1) { headers["x-canary"] = "true" }
        return AuthzRequest(
            transport: .http, source: source, destination: destination(target, port: port, random: &random),
            method: method, host: host(target, random: &random),
            path: port == 9090 ? random.pick(["/metrics", "/stats/prometheus"]) : path(target, random: &random),
            headers: headers, jwt: token(target, random: &random))
    }

    private func destination(_ target: SyntheticWorkload, port: Int, random: inout SeededGenerator)
        -> AuthzRequest.Destination
    {
        let ip = "10.8.\(random.index(250)).\(random.index(250) + 2)"
        return AuthzRequest.Destination(namespace: target.namespace, labels: target.labels, port: port, ip: ip)
    }

    private func source(for target: SyntheticWorkload, random: inout SeededGenerator) -> AuthzRequest.Source {
        let roll = random.index(100)
        let ip = roll < 97 ? "10.4.\(random.index(250)).\(random.index(250) + 2)" : "203.0.113.\(random.index(250))"
        if roll < 3 { return AuthzRequest.Source(ip: ip, mtls: false) }
        let principal: String
        if roll < 70 {
            principal = topology.workloads[random.pick(target.callers)].principal
        } else if roll < 85 {
            principal = random.pick(topology.workloads).principal
        } else if roll < 93 {
            principal = SyntheticRules.ingress
        } else {
            principal = "cluster.local/ns/monitoring/sa/prometheus"
        }
        return AuthzRequest.Source(principal: principal, ip: ip)
    }

    private func host(_ target: SyntheticWorkload, random: inout SeededGenerator) -> String {
        switch random.index(20) {
        case 0..<14: return target.host
        case 14, 15: return "\(target.app).\(target.namespace):8080"
        case 16, 17, 18: return "shop.example.com"
        default: return "Shop.Example.com"
        }
    }

    private func path(_ target: SyntheticWorkload, random: inout SeededGenerator) -> String {
        let api = "/api/v1/\(target.resource)"
        switch random.index(40) {
        case 0..<14: return "\(api)/\(random.index(100_000))"
        case 14..<22: return api
        case 22..<26: return "\(api)/\(random.index(1000))/items.json"
        case 26..<29: return "\(api)?page=\(random.index(20))&limit=50"
        case 29, 30: return "/healthz"
        case 31, 32: return "/api/v2/\(target.resource)/\(random.index(1000))"
        case 33: return "/admin/users"
        case 34: return "/internal/cache/flush"
        case 35: return "/debug/pprof"
        case 36: return "/static/app.\(random.index(50)).js"
        case 37: return "/wp-login.php"
        case 38: return "/api/v1/payments/\(random.index(1000))"
        default: return "/api/v1/../../etc/passwd"
        }
    }

    /// A verified token for about half the requests to namespaces with an issuer; a stray token elsewhere.
    private func token(_ target: SyntheticWorkload, random: inout SeededGenerator) -> JWTOutcome? {
        guard let issuer = topology.issuers[target.namespace], random.chance(0.5) else { return nil }
        let subject = "user-\(random.index(5000))"
        let groups = random.chance(0.3) ? ["admin"] : random.chance(0.5) ? ["dev", "readers"] : ["readers"]
        let claims = ClaimValue.object([
            "iss": .string(issuer), "sub": .string(subject), "aud": .string(random.chance(0.9) ? "api" : "mobile"),
            "groups": .array(groups.map(ClaimValue.string)), "scope": .string("orders.read orders.write"),
        ])
        return JWTOutcome(present: true, valid: true, claims: claims, requestPrincipal: "\(issuer)/\(subject)")
    }
}
