import Foundation
import Testing

@testable import RampartPolicy

/// The corpus's policy sets against requests made by mutating the corpus's requests: paths
/// with escapes, dot segments and case changes, other methods, hosts, headers, peers, ports,
/// tokens and transports, drawn from the literals every set and request holds. The fast path
/// the proxy runs must decide each one as the reference evaluation and the explanation do.
@Suite("fast path against the reference on mutated corpus requests")
struct MutatedCorpusDifferentialTests {
    @Test("every policy set decides mutated requests alike on the fast path and the reference", arguments: [
        ("authz-cases.yaml", UInt64(11)), ("authz-cases.yaml", 12), ("authz-derived-cases.yaml", 13),
    ])
    func mutatedRequests(file: String, seed: UInt64) throws {
        let (cases, environment) = try Corpus.authzCases(file)
        let requests = cases.compactMap { $0.item["request"] as? [String: Any] }
        var mutator = RequestMutator(requests: requests, policyTexts: cases.map(\.yaml), seed: seed)
        var evaluated = 0
        var disagreements: [String] = []
        var engines: [String: PolicyEngine] = [:]
        for corpusCase in cases {
            let engine = engines[corpusCase.yaml] ?? PolicyEngine(yaml: corpusCase.yaml, options: SnapshotOptions(jwks: environment))
            engines[corpusCase.yaml] = engine
            guard let base = corpusCase.item["request"] as? [String: Any] else { continue }
            for _ in 0..<40 {
                let object = mutator.mutate(base)
                guard let request = try? AuthzRequest(object: object) else { continue }
                evaluated += 1
                let workload = engine.snapshot.workload(
                    namespace: request.destination.namespace, labels: request.destination.labels)
                let fast = engine.snapshot.evaluate(request)
                let reference = workload.evaluateReference(request)
                let explained = workload.explain(request).decision
                if fast != reference || fast != explained {
                    disagreements.append(
                        "\(corpusCase.id) with \(object): fast \(fast.status) \(fast.reason); reference \(reference.status) \(reference.reason); explained \(explained.status)")
                }
            }
        }
        #expect(evaluated > cases.count * 20, "most mutated requests should be readable: \(evaluated) of \(cases.count * 40)")
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, first: \(disagreements.first ?? "")")
    }
}

/// Makes request objects (the request file's schema) by changing one to four fields of a
/// corpus request, with values taken from the corpus or bent into the forms the evaluator
/// normalizes.
private struct RequestMutator {
    var random: SeededGenerator
    let requests: [[String: Any]]
    let paths: [String]
    let hosts: [String]
    let headerNames: [String]
    let headerValues: [String]
    let principals: [String]
    let namespaces: [String]
    let ports: [Int]
    let addresses: [String]
    let jwts: [Any]

    init(requests: [[String: Any]], policyTexts: [String], seed: UInt64) {
        random = SeededGenerator(seed: seed)
        self.requests = requests
        let policyText = policyTexts.joined(separator: "\n")
        func literals(_ pattern: String) -> [String] {
            guard let expression = try? NSRegularExpression(pattern: pattern) else { return [] }
            let range = NSRange(policyText.startIndex..., in: policyText)
            return expression.matches(in: policyText, range: range).compactMap { match in
                Range(match.range(at: match.numberOfRanges - 1), in: policyText).map { String(policyText[$0]) }
            }
        }
        func strings(_ key: String, in object: [String: Any]?) -> [String] {
            guard let value = object?[key] else { return [] }
            return [value as? String ?? (value as? Int).map(String.init) ?? ""].filter { !$0.isEmpty }
        }
        var paths = Set(literals(#"(/[A-Za-z0-9_.{}*%/-]*)"#).map { $0.replacingOccurrences(of: "*", with: "x") })
        var hosts = Set(literals(#"hosts:\s*\[\s*"?([^",\]\s]+)"#))
        var headerNames = Set(literals(#"request\.headers\[([^\]]+)\]"#))
        var headerValues = Set(literals(#"values:\s*\[\s*"?([^",\]\s]+)"#).map { $0.replacingOccurrences(of: "*", with: "") })
        var principals = Set(literals(#"principals:\s*\[\s*"?([^",\]\s]+)"#).map { $0.replacingOccurrences(of: "*", with: "z") })
        var namespaces = Set(literals(#"namespace:\s*([a-z0-9-]+)"#))
        var ports = Set(literals(#"ports:\s*\[\s*"?([0-9]+)"#).compactMap { Int($0) })
        var addresses = Set(["10.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "2001:db8::7", "127.0.0.1"])
        var jwts: [Any] = []
        for request in requests {
            paths.formUnion(strings("path", in: request))
            hosts.formUnion(strings("host", in: request))
            let source = request["source"] as? [String: Any]
            principals.formUnion(strings("principal", in: source))
            namespaces.formUnion(strings("namespace", in: source))
            addresses.formUnion(strings("ip", in: source) + strings("remote_ip", in: source))
            if let port = (request["destination"] as? [String: Any])?["port"] as? Int { ports.insert(port) }
            for (name, value) in request["headers"] as? [String: Any] ?? [:] {
                headerNames.insert(name)
                if let text = value as? String { headerValues.insert(text) }
            }
            if let jwt = request["jwt"] { jwts.append(jwt) }
        }
        self.paths = paths.sorted()
        self.hosts = hosts.sorted()
        self.headerNames = headerNames.sorted()
        self.headerValues = headerValues.sorted()
        self.principals = principals.sorted()
        self.namespaces = namespaces.sorted()
        self.ports = ports.sorted()
        self.addresses = addresses.sorted()
        self.jwts = jwts
    }

    mutating func mutate(_ base: [String: Any]) -> [String: Any] {
        var request = base
        for _ in 0...random.index(4) {
            switch random.index(11) {
            case 0, 1: request["path"] = bend(path: random.pick(paths))
            case 2: request["method"] = random.pick(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT", "get", "Post"])
            case 3: request["host"] = bend(host: random.pick(hosts))
            case 4:
                var headers = request["headers"] as? [String: Any] ?? [:]
                let name = random.pick(headerNames)
                if random.chance(0.2) {
                    headers[name] = nil
                } else {
                    headers[random.chance(0.2) ? name.uppercased() : name] = bend(value: random.pick(headerValues))
                }
                request["headers"] = headers
            case 5:
                var source = request["source"] as? [String: Any] ?? [:]
                source["principal"] = random.chance(0.15) ? nil : bend(value: random.pick(principals))
                if random.chance(0.3) { source["mtls"] = random.chance(0.5) }
                request["source"] = source
            case 6:
                var source = request["source"] as? [String: Any] ?? [:]
                source["namespace"] = random.chance(0.15) ? nil : random.pick(namespaces)
                request["source"] = source
            case 7:
                var source = request["source"] as? [String: Any] ?? [:]
                source[random.chance(0.5) ? "ip" : "remote_ip"] = random.pick(addresses)
                request["source"] = source
            case 8:
                var destination = request["destination"] as? [String: Any] ?? [:]
                destination["port"] = random.chance(0.1) ? nil : random.pick(ports)
                request["destination"] = destination
            case 9: request["jwt"] = random.chance(0.3) || jwts.isEmpty ? nil : random.pick(jwts)
            default:
                if random.chance(0.5) {
                    request["protocol"] = (request["protocol"] as? String)?.uppercased() == "TCP" ? "HTTP" : "TCP"
                } else {
                    request["destination"] = random.pick(requests)["destination"]
                }
            }
        }
        return request
    }

    /// A path in one of the forms Istio's normalization treats: case, doubled and escaped
    /// slashes, backslashes, dot segments, escaped letters, a query, a fragment, parameters.
    mutating func bend(path: String) -> String {
        guard random.chance(0.7) else { return path }
        var text = path
        switch random.index(14) {
        case 0: text = text.uppercased()
        case 1: text = text.replacingOccurrences(of: "/", with: "//")
        case 2: text = text.replacingOccurrences(of: "/", with: random.pick(["%2F", "%2f", "%5C", "%5c", "\\"]))
        case 3: text = "/x/.." + text
        case 4: text = text.replacingOccurrences(of: "/", with: "/./")
        case 5: text += random.pick(["?a=b", "?", "#frag", "?x=/admin", ";p=1", "/", "/..", "/.", "%"])
        case 6:
            if let letter = text.firstIndex(where: \.isLetter) {
                let escaped = String(format: "%%%02X", text[letter].asciiValue ?? 0x61)
                text.replaceSubrange(letter...letter, with: escaped)
            }
        case 7: text = String(text.dropLast(random.index(max(text.count, 1))))
        case 8: text = text + "/" + random.pick(paths).dropFirst()
        case 9: text = "*" + text
        case 10: text = text.replacingOccurrences(of: "/", with: "/%2e%2e/")
        case 11: text = "//" + text
        case 12: text = text.isEmpty ? "" : String(text.dropFirst())
        default: text += "%00"
        }
        return text
    }

    mutating func bend(host: String) -> String {
        switch random.index(6) {
        case 0: host.uppercased()
        case 1: host + ":" + String(random.pick(ports))
        case 2: host + "."
        case 3: "x" + host
        default: host
        }
    }

    mutating func bend(value: String) -> String {
        switch random.index(8) {
        case 0: value.uppercased()
        case 1: value + "x"
        case 2: "x" + value
        case 3: " " + value + " "
        case 4: ""
        default: value
        }
    }
}
