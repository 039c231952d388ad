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
        var plaintextDenied: [AuthorizationPolicy] = []
        for case .authorizationPolicy(let policy) in resources where refusesPlaintext(policy) { plaintextDenied.append(policy) }
        for case .authorizationPolicy(let policy) in resources {
            var reporter = Reporter(resource: policy.id, location: policy.location)
            identityWithoutStrict(
                policy, peers: peers, rootNamespace: rootNamespace, plaintextDenied: plaintextDenied, &reporter)
            noRequestAuthentication(policy, authentications, rootNamespace: rootNamespace, &reporter)
            neverMatches(policy, &reporter)
            ipBlocksAtGateway(policy, &reporter)
            diagnostics += reporter.diagnostics
        }
        for authentication in authentications {
            diagnostics += tokenNotRequired(authentication, resources, rootNamespace: rootNamespace)
        }
        for resource in resources { diagnostics += selectorOnGatewayPods(resource) }
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

    /// The mTLS modes a policy's workloads get from the PeerAuthentications given (those its
    /// selector's labels select, else its namespace's, else the mesh's; PERMISSIVE when none):
    /// the workload's mode, and each port of `portLevelMtls` whose mode accepts plaintext when the
    /// workload's does not.
    ///
    /// The policy's workloads include those that workload-level PeerAuthentications select: a
    /// namespace-wide policy covers every workload of its namespace (every namespace, in the root
    /// namespace), one with a selector the workloads that also carry another PeerAuthentication's
    /// labels. The weakest mode any of them gets is the one returned.
    private static func modes(
        of policy: AuthorizationPolicy, peers: [String: [(policy: PeerAuthentication, order: Int)]], rootNamespace: String
    ) -> (workload: MTLSMode, plaintextPorts: [(port: Int, mode: MTLSMode)]) {
        let base = policy.selector?.matchLabels ?? [:]
        let namespaces =
            policy.metadata.namespace == rootNamespace
            ? [rootNamespace] + peers.keys.filter { $0 != rootNamespace }.sorted() : [policy.metadata.namespace]
        var workloads: [(namespace: String, labels: [String: String])] = [(policy.metadata.namespace, base)]
        for namespace in namespaces where namespace != rootNamespace {
            if namespace != policy.metadata.namespace { workloads.append((namespace, base)) }
            for peer in peers[namespace] ?? [] {
                guard let selected = peer.policy.selector?.matchLabels, !selected.isEmpty,
                    selected.allSatisfy({ label in base[label.key].map { $0 == label.value } ?? true })
                else { continue }
                workloads.append((namespace, base.merging(selected) { own, _ in own }))
            }
        }
        var ports: [Int: MTLSMode] = [:]
        for workload in workloads {
            let resolved = PeerAuthenticationResolver.resolve(
                peers, rootNamespace: rootNamespace, namespace: workload.namespace, labels: workload.labels)
            if resolved.workloadMode != .strict { return (resolved.workloadMode, []) }
            for (port, mode) in resolved.portModes where mode != .strict && ports[port] == nil { ports[port] = mode }
        }
        return (.strict, ports.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// The `from` fields and `when` keys matched against the peer's mTLS identity, which a
    /// plaintext request does not have (the fields and conditions ISTIO-SECURITY-2021-004 names,
    /// with the service-account and trust-domain forms Istio derives from the principal).
    static let identityFields = ["principals", "namespaces", "serviceAccounts", "trustDomains"]
    static let identityKeys: Set<String> = ["source.principal", "source.namespace", "source.serviceAccount", "source.trustDomain"]

    /// Warns (RP066) of an identity condition where plaintext is accepted: a DENY rule on a peer
    /// identity never matches a plaintext request, so the request is not denied; an ALLOW rule on
    /// a negated identity matches it, so it is let in. No warning where another DENY policy for
    /// the same workloads refuses every request without a peer identity, as the advisory's fix has it.
    private static func identityWithoutStrict(
        _ policy: AuthorizationPolicy, peers: [String: [(policy: PeerAuthentication, order: Int)]], rootNamespace: String,
        plaintextDenied: [AuthorizationPolicy], _ reporter: inout Reporter
    ) {
        guard policy.action == .allow || policy.action == .deny else { return }
        let (mode, ports) = modes(of: policy, peers: peers, rootNamespace: rootNamespace)
        if mode == .strict && ports.isEmpty { allowsNoIdentityUnderStrict(policy, &reporter) }
        guard mode != .strict || !ports.isEmpty else { return }
        if plaintextDenied.contains(where: { covers($0, policy, rootNamespace: rootNamespace) }) { return }
        let accepted =
            mode != .strict
            ? peers.values.allSatisfy(\.isEmpty)
                ? "the workloads accept plaintext (no PeerAuthentication is among the files given, and Istio's default mode is PERMISSIVE)"
                : "the workloads accept plaintext (mTLS mode \(mode.rawValue) among the PeerAuthentications given)"
            : "portLevelMtls accepts plaintext on port\(ports.count == 1 ? "" : "s") "
                + ports.map { "\($0.port) (\($0.mode.rawValue))" }.joined(separator: ", ")
        let fix = "require mTLS with a STRICT PeerAuthentication for these workloads (and their ports), or add a DENY policy for them that refuses requests without a peer identity (from: [{source: {notPrincipals: [\"*\"]}}])"
        let positive = Self.identityFields, negative = Self.identityFields.map { "not" + $0.prefix(1).uppercased() + $0.dropFirst() }
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
                        .identityWithoutStrict, "\(path).\(field)", "\(field) needs mTLS, but \(accepted): \(what)", fix: fix)
                } else if policy.action == .allow, mode == .disable, let field = positive.first(where: { fields[$0] != nil }) {
                    reporter.add(
                        .identityWithoutStrict, "\(path).\(field)",
                        "\(field) needs mTLS, but the mTLS mode is DISABLE among the PeerAuthentications given: no request has a peer identity, so this rule never matches",
                        fix: "set the PeerAuthentication's mode to STRICT or PERMISSIVE, or match on something other than the peer identity")
                }
            }
            for (entry, condition) in (rule.when ?? []).enumerated() where Self.identityKeys.contains(condition.key) {
                let path = "spec.rules[\(index)].when[\(entry)]"
                if policy.action == .deny && !condition.values.isEmpty {
                    reporter.add(
                        .identityWithoutStrict, "\(path).values",
                        "\(condition.key) needs mTLS, but \(accepted): a plaintext request has no peer identity, so this condition never matches it and the request is not denied",
                        fix: fix)
                } else if policy.action == .allow && !condition.notValues.isEmpty {
                    reporter.add(
                        .identityWithoutStrict, "\(path).notValues",
                        "\(condition.key) needs mTLS, but \(accepted): a plaintext request has no peer identity, so notValues holds for it and this ALLOW rule lets it in",
                        fix: fix)
                }
            }
        }
    }

    /// Warns (RP077) of a RequestAuthentication that no AuthorizationPolicy backs: it refuses
    /// invalid tokens, but a request with no token passes it, and only a policy that reads the
    /// request principal (an ALLOW with `requestPrincipals`, a DENY with `notRequestPrincipals`)
    /// makes a token required, as Istio's documentation of JWT authentication says.
    static func tokenNotRequired(
        _ authentication: RequestAuthentication, _ resources: [SecurityResource], rootNamespace: String
    ) -> [Diagnostic] {
        guard !authentication.jwtRules.isEmpty else { return [] }
        let namespace = authentication.metadata.namespace
        let backed = resources.contains { resource in
            guard case .authorizationPolicy(let policy) = resource,
                policy.metadata.namespace == namespace || policy.metadata.namespace == rootNamespace || namespace == rootNamespace
            else { return false }
            return (policy.rules ?? []).contains { rule in
                (rule.from ?? []).contains { source in
                    source?.fields["requestPrincipals"] != nil || source?.fields["notRequestPrincipals"] != nil
                } || (rule.when ?? []).contains { $0.key.hasPrefix("request.auth.") }
            }
        }
        guard !backed else { return [] }
        var reporter = Reporter(resource: authentication.id, location: authentication.location)
        reporter.add(
            .tokenNotRequired, "spec.jwtRules",
            "no AuthorizationPolicy among the resources given reads the request principal in namespace \(namespace) or the root namespace: this RequestAuthentication refuses invalid tokens, but a request without a token is let in",
            fix: "to require a token, add an AuthorizationPolicy for the same workloads that allows requestPrincipals: [\"*\"] (or denies notRequestPrincipals: [\"*\"]), or analyze it together with this RequestAuthentication")
        return reporter.diagnostics
    }

    /// Warns (RP078) of an AuthorizationPolicy or RequestAuthentication whose selector names a
    /// Gateway API gateway's pods by `gateway.networking.k8s.io/gateway-name`: Istio applies it,
    /// but its analyzer (IST0166) asks for `targetRefs` to the Gateway, which follow the gateway
    /// whatever its pods are labelled.
    static func selectorOnGatewayPods(_ resource: SecurityResource) -> [Diagnostic] {
        let selector: WorkloadSelector?
        switch resource {
        case .authorizationPolicy(let policy): selector = policy.selector
        case .requestAuthentication(let authentication): selector = authentication.selector
        case .peerAuthentication: return []
        }
        guard let gateway = selector?.matchLabels[PolicyTargetReference.gatewayNameLabel] else { return [] }
        var reporter = Reporter(resource: resource.id, location: resource.location)
        reporter.add(
            .selectorOnGatewayPods, "spec.selector.matchLabels",
            "the selector names the pods of Gateway \(gateway) by their \(PolicyTargetReference.gatewayNameLabel) label; Istio applies it, but asks for a targetRefs to the Gateway instead",
            fix: "replace the selector with targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: \(gateway)}]")
        return reporter.diagnostics
    }

    /// Warns (RP068) of an ALLOW rule on `notPrincipals: ["*"]` where every request has a peer
    /// identity (STRICT on every port): it matches no request.
    private static func allowsNoIdentityUnderStrict(_ policy: AuthorizationPolicy, _ reporter: inout Reporter) {
        guard policy.action == .allow else { return }
        for (index, rule) in (policy.rules ?? []).enumerated() {
            for (entry, source) in (rule.from ?? []).enumerated() where source?.fields["notPrincipals"]?.contains("*") == true {
                reporter.add(
                    .neverMatches, "spec.rules[\(index)].from[\(entry)].source.notPrincipals",
                    "notPrincipals: [\"*\"] matches only requests without a peer identity, and under STRICT mTLS every request has one, so this rule never matches",
                    fix: "to allow callers with an identity, use principals: [\"*\"]; to refuse plaintext, STRICT already does")
            }
        }
    }

    /// Whether `denial` is a DENY policy with a rule refusing every request without a peer
    /// identity (every `from` entry only `notPrincipals: ["*"]` or `notNamespaces: ["*"]`, no `to`
    /// or `when`), enforced on at least the workloads `policy` selects.
    static func refusesPlaintext(_ denial: AuthorizationPolicy) -> Bool {
        guard denial.action == .deny, denial.dryRunValue.flatMap(GoBool.parse) != true else { return false }
        return (denial.rules ?? []).contains { rule in
            guard (rule.to ?? []).isEmpty, (rule.when ?? []).isEmpty, let from = rule.from, !from.isEmpty else { return false }
            return from.allSatisfy { source in
                guard let fields = source?.fields, fields.count == 1, let (field, values) = fields.first else { return false }
                return (field == "notPrincipals" || field == "notNamespaces") && values.contains("*")
            }
        }
    }

    private static func covers(_ denial: AuthorizationPolicy, _ policy: AuthorizationPolicy, rootNamespace: String) -> Bool {
        guard denial.targetRefs.isEmpty, denial.targetRef == nil else { return false }
        guard denial.metadata.namespace == policy.metadata.namespace || denial.metadata.namespace == rootNamespace else {
            return false
        }
        guard let labels = denial.selector?.matchLabels, !labels.isEmpty else { return true }
        let selected = policy.selector?.matchLabels ?? [:]
        return labels.allSatisfy { selected[$0.key] == $0.value }
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
            for (entry, source) in (rule.from ?? []).enumerated() where source?.fields["notRequestPrincipals"] != nil {
                let effect =
                    policy.action == .deny
                    ? "so notRequestPrincipals holds for every request, and this DENY rule denies every request its other conditions match"
                    : "so notRequestPrincipals holds for every request, and this rule lets in every request its other conditions match"
                reporter.add(
                    .noRequestAuthentication, "spec.rules[\(index)].from[\(entry)].source.notRequestPrincipals",
                    "notRequestPrincipals reads a verified JWT, but no RequestAuthentication among the resources given applies in namespace \(namespace) or the root namespace: no request has a request principal, \(effect)",
                    fix: "add a RequestAuthentication for the token's issuer in namespace \(namespace) (or the root namespace), or analyze it together with this policy")
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
                        let effect = field.hasPrefix("not") ? "so it excludes nothing" : "so it never matches"
                        reporter.add(
                            .neverMatches, "\(path).\(field)[\(position)]",
                            "path \"\(value)\" does not start with /, and every request path does, \(effect)",
                            fix: "write it as /\(value)")
                    }
                }
                for field in ["methods", "notMethods"] {
                    for (position, value) in (fields[field] ?? []).enumerated() where value != value.uppercased() {
                        let effect = field.hasPrefix("not") ? "so it excludes nothing" : "so it never matches"
                        reporter.add(
                            .neverMatches, "\(path).\(field)[\(position)]",
                            "method \"\(value)\" is not upper case; methods are compared exactly, and requests send them in upper case, \(effect)",
                            fix: "write it as \(value.uppercased())")
                    }
                }
            }
            for (entry, operation) in (rule.to ?? []).enumerated() {
                guard let fields = operation?.fields else { continue }
                for field in ["paths", "notPaths"] {
                    for (position, value) in (fields[field] ?? []).enumerated() where value.contains("?") {
                        let effect = field.hasPrefix("not") ? "so it excludes nothing" : "so it never matches"
                        let bare = String(value.prefix { $0 != "?" })
                        reporter.add(
                            .neverMatches, "spec.rules[\(index)].to[\(entry)].operation.\(field)[\(position)]",
                            "path \"\(value)\" holds a query, but the query is taken off the request's path before paths are compared, \(effect)",
                            fix: bare.isEmpty ? "remove the query" : "write the path alone (\(bare)); paths cannot select by query")
                    }
                }
            }
            for (entry, source) in (rule.from ?? []).enumerated() {
                guard let fields = source?.fields else { continue }
                let path = "spec.rules[\(index)].from[\(entry)].source"
                for field in ["principals", "notPrincipals"] {
                    for (position, value) in (fields[field] ?? []).enumerated()
                    where !value.isEmpty && !value.contains("*") && !value.lowercased().hasPrefix("spiffe://")
                        && (!value.contains("/") || value.hasPrefix("ns/"))
                    {
                        let effect = field.hasPrefix("not") ? "so it excludes nothing" : "so it never matches"
                        reporter.add(
                            .neverMatches, "\(path).\(field)[\(position)]",
                            "principal \"\(value)\" has no trust domain; a peer's principal is its SPIFFE ID without spiffe://, such as cluster.local/ns/NAMESPACE/sa/ACCOUNT, \(effect)",
                            fix: value.hasPrefix("ns/")
                                ? "write it with the trust domain, e.g. cluster.local/\(value), or use serviceAccounts: [NAMESPACE/ACCOUNT]"
                                : "write the full principal, e.g. cluster.local/ns/NAMESPACE/sa/\(value), or use serviceAccounts")
                    }
                }
                for field in ["requestPrincipals", "notRequestPrincipals"] {
                    for (position, value) in (fields[field] ?? []).enumerated()
                    where !value.isEmpty && !value.contains("*") && !value.contains("/") {
                        let effect = field.hasPrefix("not") ? "so it excludes nothing" : "so it never matches"
                        reporter.add(
                            .neverMatches, "\(path).\(field)[\(position)]",
                            "request principal \"\(value)\" has no issuer; a request principal is the token's iss/sub, \(effect)",
                            fix: "write it as ISSUER/\(value), such as https://accounts.example.com/\(value), or ISSUER/* for any subject")
                    }
                }
            }
            for (entry, source) in (rule.from ?? []).enumerated() {
                guard let fields = source?.fields else { continue }
                for field in ["principals", "notPrincipals"] {
                    for (position, value) in (fields[field] ?? []).enumerated() where value.lowercased().hasPrefix("spiffe://") {
                        let effect = field.hasPrefix("not") ? "so it excludes nothing" : "so it never matches"
                        reporter.add(
                            .neverMatches, "spec.rules[\(index)].from[\(entry)].source.\(field)[\(position)]",
                            "principal \"\(value)\" starts with spiffe://; principals are compared without it, \(effect)",
                            fix: "write it as \(value.dropFirst("spiffe://".count))")
                    }
                }
            }
        }
    }
}
