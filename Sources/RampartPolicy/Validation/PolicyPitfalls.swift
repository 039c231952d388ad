/// Warnings for AuthorizationPolicies that Istio admits but that do not do what they seem to,
/// found against the other resources given: peer identity where plaintext is accepted (Istio's
/// security advisory ISTIO-SECURITY-2021-004), request principals where no RequestAuthentication
/// applies, and values no request can have.
enum PolicyPitfalls {
    static func analyze(_ resources: [SecurityResource], rootNamespace: String) -> [Diagnostic] {
        var peers: [String: [(policy: PeerAuthentication, order: Int)]] = [:]
        var authentications: [RequestAuthentication] = []
        for (order, resource) in resources.enumerated() {
            switch resource {
            case .peerAuthentication(let peer): peers[peer.metadata.namespace, default: []].append((peer, order))
            case .requestAuthentication(let authentication): authentications.append(authentication)
            case .authorizationPolicy: break
            }
        }
        var diagnostics: [Diagnostic] = []
        for case .authorizationPolicy(let policy) in resources {
            var reporter = Reporter(resource: policy.id, location: policy.location)
            identityWithoutStrict(policy, peers: peers, rootNamespace: rootNamespace, &reporter)
            noRequestAuthentication(policy, authentications, rootNamespace: rootNamespace, &reporter)
            neverMatches(policy, &reporter)
            ipBlocksAtGateway(policy, &reporter)
            diagnostics += reporter.diagnostics
        }
        for case .peerAuthentication(let peer) in resources where peer.metadata.namespace == rootNamespace {
            guard let selector = peer.selector, !selector.matchLabels.isEmpty else { continue }
            var reporter = Reporter(resource: peer.id, location: peer.location)
            reporter.add(
                .rootPeerSelector, "spec.selector",
                "a PeerAuthentication with a workload selector in the root namespace (\(rootNamespace)) is ignored, as"
                    + " in Istio: it applies neither mesh-wide nor to the workloads it selects",
                fix: "move it to the namespace of the workloads it selects, or remove the selector to make it the mesh-wide policy")
            diagnostics += reporter.diagnostics
        }
        return diagnostics
    }

    /// The mTLS mode a policy's workloads get from the PeerAuthentications given: those its
    /// selector's labels select, else its namespace's, else the mesh's (PERMISSIVE when none).
    private static func mode(
        of policy: AuthorizationPolicy, peers: [String: [(policy: PeerAuthentication, order: Int)]], rootNamespace: String
    ) -> MTLSMode {
        PeerAuthenticationResolver.resolve(
            peers, rootNamespace: rootNamespace, namespace: policy.metadata.namespace,
            labels: policy.selector?.matchLabels ?? [:]
        ).workloadMode
    }

    private static func identityWithoutStrict(
        _ policy: AuthorizationPolicy, peers: [String: [(policy: PeerAuthentication, order: Int)]], rootNamespace: String,
        _ reporter: inout Reporter
    ) {
        guard policy.action == .allow || policy.action == .deny else { return }
        let mode = mode(of: policy, peers: peers, rootNamespace: rootNamespace)
        guard mode != .strict else { return }
        let positive = ["principals", "namespaces"], negative = ["notPrincipals", "notNamespaces"]
        for (index, rule) in (policy.rules ?? []).enumerated() {
            for (entry, source) in (rule.from ?? []).enumerated() {
                guard let fields = source?.fields else { continue }
                let path = "spec.rules[\(index)].from[\(entry)].source"
                let named = policy.action == .deny ? positive.filter { fields[$0] != nil } : negative.filter { fields[$0] != nil }
                if let field = named.first {
                    let what =
                        policy.action == .deny
                        ? "a plaintext request has no peer identity, so this DENY rule never matches it and the request is not denied"
                        : "a plaintext request has no peer identity, so \(field) matches it and this ALLOW rule lets it in"
                    reporter.add(
                        .identityWithoutStrict, "\(path).\(field)",
                        "\(field) needs mTLS, but the workloads accept plaintext (mTLS mode \(mode.rawValue) among the PeerAuthentications given): \(what)",
                        fix: "require mTLS with a STRICT PeerAuthentication for these workloads, or add a rule that denies requests without a peer identity (notPrincipals: [\"*\"])")
                } else if policy.action == .allow, mode == .disable, let field = positive.first(where: { fields[$0] != nil }) {
                    reporter.add(
                        .identityWithoutStrict, "\(path).\(field)",
                        "\(field) needs mTLS, but the mTLS mode is DISABLE among the PeerAuthentications given: no request has a peer identity, so this rule never matches",
                        fix: "set the PeerAuthentication's mode to STRICT or PERMISSIVE, or match on something other than the peer identity")
                }
            }
        }
    }

    private static func noRequestAuthentication(
        _ policy: AuthorizationPolicy, _ authentications: [RequestAuthentication], rootNamespace: String,
        _ reporter: inout Reporter
    ) {
        // A RequestAuthentication of the policy's namespace or of the root namespace may apply;
        // its selector is not compared, as the workloads are not known here.
        let namespace = policy.metadata.namespace
        guard
            !authentications.contains(where: {
                $0.metadata.namespace == namespace || $0.metadata.namespace == rootNamespace || namespace == rootNamespace
            })
        else { return }
        let consequence =
            policy.action == .deny ? "so this DENY rule never matches" : "so this rule never matches and the requests it was meant to allow are denied"
        for (index, rule) in (policy.rules ?? []).enumerated() {
            var found: [(String, String)] = []
            for (entry, source) in (rule.from ?? []).enumerated() where source?.fields["requestPrincipals"] != nil {
                found.append(("spec.rules[\(index)].from[\(entry)].source.requestPrincipals", "requestPrincipals"))
            }
            for (entry, condition) in (rule.when ?? []).enumerated()
            where condition.key.hasPrefix("request.auth.") && !condition.values.isEmpty {
                found.append(("spec.rules[\(index)].when[\(entry)]", condition.key))
            }
            if let (path, field) = found.first {
                reporter.add(
                    .noRequestAuthentication, path,
                    "\(field) comes from a verified JWT, but no RequestAuthentication among the resources given applies in namespace \(namespace) or the root namespace: requests have no request principal or claims, \(consequence)",
                    fix: "add a RequestAuthentication for the token's issuer in namespace \(namespace) (or the root namespace), or analyze it together with this policy")
            }
        }
    }

    /// Whether a policy selects an ingress gateway: Istio's default gateway labels, or a Gateway
    /// target reference.
    private static func selectsGateway(_ policy: AuthorizationPolicy) -> Bool {
        if WorkloadSelector.isIngressGateway(policy.selector?.matchLabels ?? [:]) { return true }
        let targets = (policy.targetRef.map { [$0] } ?? []) + policy.targetRefs
        return targets.contains { $0.kind == "Gateway" }
    }

    /// `ipBlocks`/`notIpBlocks` or a `source.ip` condition on an ingress gateway: behind a load
    /// balancer they see its address, not the client's, as Istio's ingress documentation warns.
    private static func ipBlocksAtGateway(_ policy: AuthorizationPolicy, _ reporter: inout Reporter) {
        guard selectsGateway(policy) else { return }
        for (index, rule) in (policy.rules ?? []).enumerated() {
            var paths: [String] = []
            for (entry, source) in (rule.from ?? []).enumerated() {
                for field in ["ipBlocks", "notIpBlocks"] where source?.fields[field] != nil {
                    paths.append("spec.rules[\(index)].from[\(entry)].source.\(field)")
                }
            }
            for (entry, condition) in (rule.when ?? []).enumerated() where condition.key == "source.ip" {
                paths.append("spec.rules[\(index)].when[\(entry)]")
            }
            for path in paths {
                reporter.add(
                    .ipBlocksAtGateway, path,
                    "this policy selects an ingress gateway, where the peer address is usually the load balancer's, not the client's",
                    fix: "match the original client with remoteIpBlocks (or remote.ip), which read X-Forwarded-For or the PROXY protocol")
            }
        }
    }

    private static func neverMatches(_ policy: AuthorizationPolicy, _ reporter: inout Reporter) {
        for (index, rule) in (policy.rules ?? []).enumerated() {
            for (entry, operation) in (rule.to ?? []).enumerated() {
                guard let fields = operation?.fields else { continue }
                let path = "spec.rules[\(index)].to[\(entry)].operation"
                for field in ["paths", "notPaths"] {
                    for (position, value) in (fields[field] ?? []).enumerated()
                    where !value.isEmpty && !value.hasPrefix("/") && !value.hasPrefix("*") {
                        reporter.add(
                            .neverMatches, "\(path).\(field)[\(position)]",
                            "path \"\(value)\" does not start with /, and every request path does, so it never matches",
                            fix: "write it as /\(value)")
                    }
                }
                for field in ["methods", "notMethods"] {
                    for (position, value) in (fields[field] ?? []).enumerated() where value != value.uppercased() {
                        reporter.add(
                            .neverMatches, "\(path).\(field)[\(position)]",
                            "method \"\(value)\" is not upper case; methods are compared exactly, and requests send them in upper case, so it never matches",
                            fix: "write it as \(value.uppercased())")
                    }
                }
            }
            for (entry, source) in (rule.from ?? []).enumerated() {
                guard let fields = source?.fields else { continue }
                for field in ["principals", "notPrincipals"] {
                    for (position, value) in (fields[field] ?? []).enumerated() where value.lowercased().hasPrefix("spiffe://") {
                        reporter.add(
                            .neverMatches, "spec.rules[\(index)].from[\(entry)].source.\(field)[\(position)]",
                            "principal \"\(value)\" starts with spiffe://; principals are compared without it, so it never matches",
                            fix: "write it as \(value.dropFirst("spiffe://".count))")
                    }
                }
            }
        }
    }
}
