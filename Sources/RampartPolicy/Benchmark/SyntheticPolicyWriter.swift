/// Writes the Istio YAML of a synthetic mesh: mesh-wide policies in the root namespace, one or two
/// namespace-wide policies per namespace, and the rest selecting single workloads (ALLOW, DENY,
/// AUDIT, a few in dry run), plus PeerAuthentications and RequestAuthentications.
struct SyntheticPolicyWriter {
    let topology: SyntheticTopology
    let rootNamespace: String

    /// How many AuthorizationPolicies of each scope a mesh of `count` has.
    static func split(_ count: Int, namespaces: Int) -> (root: Int, namespaceWide: Int, workload: Int) {
        let root = min(count, min(5, max(1, count / 100)))
        let wide = min(count - root, min(namespaces * 2, count / 10))
        return (root, wide, count - root - wide)
    }

    func yaml(policies count: Int, random: inout SeededGenerator) -> String {
        var documents: [String] = peerAuthentications() + requestAuthentications()
        let split = Self.split(count, namespaces: topology.namespaces.count)
        for index in 0..<split.root { documents.append(SyntheticRules.meshWide(index, root: rootNamespace)) }
        for index in 0..<split.namespaceWide {
            let namespace = topology.namespaces[index % topology.namespaces.count]
            documents.append(SyntheticRules.namespaceWide(index / topology.namespaces.count, namespace: namespace))
        }
        let order = topology.workloads.indices.shuffled(using: &random)
        for index in 0..<split.workload {
            let target = topology.workloads[order[index % order.count]]
            documents.append(workloadPolicy(index, target, random: &random))
        }
        return documents.joined(separator: "\n---\n") + "\n"
    }

    private func workloadPolicy(_ index: Int, _ target: SyntheticWorkload, random: inout SeededGenerator) -> String {
        let roll = random.index(100)
        let action = roll < 70 ? "ALLOW" : roll < 92 ? "DENY" : "AUDIT"
        var selector = "app: \(target.app)"
        if random.chance(0.2) { selector += ", version: \(random.pick(["v1", "v2", "v3"]))" }
        let dryRun = action != "AUDIT" && random.chance(0.01)
        let callers = target.callers.map { topology.workloads[$0] }
        let rules = SyntheticRules(target: target, callers: callers, issuer: topology.issuers[target.namespace])
        let body: [String]
        switch action {
        case "ALLOW": body = (0..<(1 + random.index(3))).map { _ in rules.allow(random: &random) }
        case "DENY": body = (0..<(1 + random.index(2))).map { _ in rules.deny(random: &random) }
        default: body = [rules.audit()]
        }
        return """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata:
              name: \(target.app)-\(action.lowercased())-\(index)
              namespace: \(target.namespace)\(dryRun ? "\n  annotations: {istio.io/dry-run: \"true\"}" : "")
            spec:
              selector: {matchLabels: {\(selector)}}
              action: \(action)
              rules:
            \(body.joined(separator: "\n"))
            """
    }

    /// Mesh STRICT, a few PERMISSIVE namespaces, and some workloads with a PERMISSIVE metrics port.
    private func peerAuthentications() -> [String] {
        var documents = [peer("default", rootNamespace, selector: nil, mode: "STRICT", ports: "")]
        for (index, namespace) in topology.namespaces.enumerated() where index % 7 == 3 {
            documents.append(peer("legacy-clients", namespace, selector: nil, mode: "PERMISSIVE", ports: ""))
        }
        for (index, workload) in topology.workloads.enumerated() where index % 10 == 0 {
            documents.append(
                peer(
                    "\(workload.app)-metrics", workload.namespace, selector: workload.app, mode: "UNSET",
                    ports: "\n  portLevelMtls: {\"9090\": {mode: PERMISSIVE}}"))
        }
        return documents
    }

    private func peer(_ name: String, _ namespace: String, selector: String?, mode: String, ports: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: \(name), namespace: \(namespace)}
        spec:\(selector.map { "\n  selector: {matchLabels: {app: \($0)}}" } ?? "")
          mtls: {mode: \(mode)}\(ports)
        """
    }

    private func requestAuthentications() -> [String] {
        topology.issuers.sorted { $0.key < $1.key }.map { namespace, issuer in
            """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: \(namespace)}
            spec:
              jwtRules:
              - issuer: "\(issuer)"
                jwksUri: "\(issuer)/.well-known/jwks.json"
                audiences: ["api", "web"]
            """
        }
    }
}
