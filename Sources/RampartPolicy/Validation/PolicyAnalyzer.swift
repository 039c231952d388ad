/// A workload known to the mesh, for the analyzer's checks against real workloads.
public struct Workload: Sendable, Hashable, CustomStringConvertible {
    /// One port the workload serves, and whether Istio treats it as HTTP.
    public struct Port: Sendable, Hashable {
        /// The port number.
        public let port: Int
        /// Whether the port carries HTTP (HTTP, HTTP2, gRPC), as opposed to TCP or TLS.
        public let isHTTP: Bool

        /// Creates a port.
        public init(port: Int, isHTTP: Bool) {
            self.port = port
            self.isHTTP = isHTTP
        }
    }

    /// Its namespace.
    public let namespace: String
    /// Its labels.
    public let labels: [String: String]
    /// Its name, when the list gives one.
    public let name: String?
    /// The ports the list gives for it, whose protocol is known.
    public let ports: [Port]

    /// Creates a workload.
    public init(namespace: String, labels: [String: String], name: String? = nil, ports: [Port] = []) {
        self.namespace = namespace
        self.labels = labels
        self.name = name
        self.ports = ports
    }

    /// `namespace/name`, or the namespace and labels when it has no name.
    public var description: String {
        if let name { return "\(namespace)/\(name)" }
        return "\(namespace)/\(WorkloadSelector.text(labels))"
    }
}

/// Validation and analysis of security resources: webhook-style errors plus warnings for policies
/// that will not do what they appear to.
public enum PolicyAnalyzer {
    /// Webhook validation of each resource.
    public static func validate(_ resources: [SecurityResource]) -> [Diagnostic] {
        resources.flatMap { resource -> [Diagnostic] in
            switch resource {
            case .authorizationPolicy(let policy): return AuthorizationPolicyValidator.validate(policy)
            case .peerAuthentication(let policy): return PeerAuthenticationValidator.validate(policy)
            case .requestAuthentication(let policy): return RequestAuthenticationValidator.validate(policy)
            }
        }
    }

    /// Validation plus analysis; `workloads`, when given, enables the selector check. `reading`
    /// is what loading the resources reported: a resource with an error there or in validation
    /// is one Istio refuses, so it takes no part in the analysis of how resources combine.
    public static func analyze(
        _ resources: [SecurityResource], reading: [Diagnostic] = [], workloads: [Workload]? = nil,
        rootNamespace: String = "istio-system"
    ) -> [Diagnostic] {
        var diagnostics = validate(resources)
        let refused = Set((reading + diagnostics).compactMap { $0.severity == .error ? $0.resource : nil })
        let accepted = refused.isEmpty ? resources : resources.filter { !refused.contains($0.id) }
        for resource in resources {
            if case .authorizationPolicy(let policy) = resource { diagnostics += denyOnTCP(policy) }
            if let workloads { diagnostics += selectsNothing(resource, workloads, rootNamespace: rootNamespace) }
        }
        diagnostics += PeerAuthenticationConflicts.analyze(accepted, workloads: workloads)
        diagnostics += CustomProviderConflicts.analyze(accepted, workloads: workloads, rootNamespace: rootNamespace)
        diagnostics += PolicyPitfalls.analyze(accepted, rootNamespace: rootNamespace)
        if let workloads {
            diagnostics += unknownNamespaces(accepted, workloads, rootNamespace: rootNamespace)
            diagnostics += TCPPortReach.analyze(accepted, workloads, rootNamespace: rootNamespace)
        }
        diagnostics += duplicates(resources)
        return diagnostics
    }

    /// The findings that appear only when `batch` joins `stored` (what a config store already
    /// holds; a batch resource replaces the stored one of its kind, namespace and name): a
    /// PeerAuthentication competing with a stored one for a scope (RP063), which neither the batch
    /// nor the store shows alone.
    public static func conflicts(adding batch: [SecurityResource], to stored: [SecurityResource]) -> [Diagnostic] {
        let replaced = Set(batch.map(\.id))
        let merged = stored.filter { !replaced.contains($0.id) } + batch
        let known = Set(
            (PeerAuthenticationConflicts.analyze(stored, workloads: nil)
                + PeerAuthenticationConflicts.analyze(batch, workloads: nil)).map(ConflictKey.init))
        return PeerAuthenticationConflicts.analyze(merged, workloads: nil).filter { !known.contains(ConflictKey($0)) }
    }

    /// The PeerAuthentications among `resources` that compete for one scope, and are ignored for
    /// it (RP063).
    public static func peerAuthenticationConflicts(_ resources: [SecurityResource]) -> [Diagnostic] {
        PeerAuthenticationConflicts.analyze(resources, workloads: nil)
    }

    /// What makes two conflict findings the same one, wherever the resources were read from.
    private struct ConflictKey: Hashable {
        let code: DiagnosticCode
        let resource: ResourceID?
        let message: String

        init(_ diagnostic: Diagnostic) {
            code = diagnostic.code
            resource = diagnostic.resource
            message = diagnostic.message
        }
    }

    /// The RequestAuthentications among `resources` that no AuthorizationPolicy among them backs
    /// with a request principal requirement (RP077), for callers that know more resources than one
    /// batch (`apply`, against the store).
    public static func unbackedRequestAuthentications(_ resources: [SecurityResource], rootNamespace: String = "istio-system")
        -> Set<ResourceID>
    {
        var unbacked: Set<ResourceID> = []
        for case .requestAuthentication(let authentication) in resources
        where !PolicyPitfalls.tokenNotRequired(authentication, resources, rootNamespace: rootNamespace).isEmpty {
            unbacked.insert(authentication.id)
        }
        return unbacked
    }

    /// A resource defined again among the files given: only one definition can be stored or be
    /// in force, and which one would depend on the order the files are read in.
    public static func duplicates(_ resources: [SecurityResource]) -> [Diagnostic] {
        var first: [ResourceID: SourceLocation] = [:]
        var diagnostics: [Diagnostic] = []
        for resource in resources {
            guard let earlier = first[resource.id] else {
                first[resource.id] = resource.location
                continue
            }
            var reporter = Reporter(resource: resource.id, location: resource.location)
            reporter.add(
                .duplicateResource, "metadata.name",
                "defined again (first at \(earlier.file):\(earlier.line)); only one definition can be in force",
                fix: "keep one definition, or give this one another name")
            diagnostics += reporter.diagnostics
        }
        return diagnostics
    }

    /// A DENY rule that, on TCP ports, loses the HTTP conditions that were meant to narrow it, and so
    /// denies far more than it seems to. Warned, as Istio's webhook does, when the rule's `to` has no
    /// ports (nothing limits it to the HTTP ports it was written for), or when it has `from` entries
    /// with HTTP attributes only and no `to`; and also when every condition it has is HTTP-only.
    static func denyOnTCP(_ policy: AuthorizationPolicy) -> [Diagnostic] {
        guard policy.action == .deny else { return [] }
        var reporter = Reporter(resource: policy.id, location: policy.location)
        for (index, rule) in (policy.rules ?? []).enumerated() {
            let compiled = CompiledPolicy.compile(rule, index: index, namespace: policy.id.namespace)
            guard compiled.hasHTTPOnly else { continue }
            let tcpOpen: ([Check]) -> Bool = { $0.allSatisfy(\.attribute.isHTTPOnly) }
            let fromOpen = compiled.froms.isEmpty || compiled.froms.contains(where: tcpOpen)
            let toOpen = compiled.tos.isEmpty || compiled.tos.contains(where: tcpOpen)
            let tcpInFrom = compiled.froms.contains { !tcpOpen($0) }
            let tcpInTo = compiled.tos.contains { !tcpOpen($0) }
            if fromOpen && toOpen && tcpOpen(compiled.whens) {
                reporter.add(
                    .denyAllOnTCP, "spec.rules[\(index)]",
                    "this DENY rule only uses HTTP attributes; on TCP ports they are ignored and the rule denies every connection",
                    fix: "add ports (to.operation.ports) to limit the rule to the HTTP ports it is meant for")
            } else if !compiled.tos.isEmpty && !tcpInTo {
                reporter.add(
                    .denyAllOnTCP, "spec.rules[\(index)].to",
                    "this DENY rule's to names no ports; on TCP ports its HTTP fields are ignored, so the rule denies every connection its other conditions match",
                    fix: "add ports (to.operation.ports) to limit the rule to the HTTP ports it is meant for")
            } else if !compiled.froms.isEmpty && compiled.tos.isEmpty && !tcpInFrom {
                reporter.add(
                    .denyAllOnTCP, "spec.rules[\(index)].from",
                    "this DENY rule's from uses HTTP attributes only and it has no to; on TCP ports they are ignored, so the rule denies every connection its other conditions match",
                    fix: "add a to with ports (to.operation.ports) to limit the rule to the HTTP ports it is meant for")
            }
        }
        return reporter.diagnostics
    }

    /// `namespaces`/`notNamespaces` values (exact ones) naming a namespace where no known
    /// workload runs: usually a typo, and the rule then never matches (or always, for `not`).
    static func unknownNamespaces(_ resources: [SecurityResource], _ workloads: [Workload], rootNamespace: String)
        -> [Diagnostic]
    {
        let known = Set(workloads.map(\.namespace)).union([rootNamespace])
        var diagnostics: [Diagnostic] = []
        for case .authorizationPolicy(let policy) in resources {
            var reporter = Reporter(resource: policy.id, location: policy.location)
            for (index, rule) in (policy.rules ?? []).enumerated() {
                for (entry, source) in (rule.from ?? []).enumerated() {
                    for field in ["namespaces", "notNamespaces"] {
                        for (position, value) in (source?.fields[field] ?? []).enumerated() where value != "*" {
                            let path = "spec.rules[\(index)].from[\(entry)].source.\(field)[\(position)]"
                            if !value.contains("*") {
                                guard !known.contains(value) else { continue }
                                reporter.add(
                                    .unknownNamespace, path,
                                    "no known workload runs in namespace \"\(value)\", so no request comes from it",
                                    fix: "check the spelling against the namespaces in --workloads")
                                continue
                            }
                            // A pattern, matched as Istio matches it against a peer's ID.
                            let pattern = NamespacePattern(value)
                            guard !known.contains(where: { pattern.matches(principal: "cluster.local/ns/\($0)/sa/default") }) else {
                                continue
                            }
                            reporter.add(
                                .unknownNamespace, path,
                                "no known workload runs in a namespace matching \"\(value)\", so no request comes from one",
                                fix: "check the pattern against the namespaces in --workloads")
                        }
                    }
                }
            }
            diagnostics += reporter.diagnostics
        }
        return diagnostics
    }

    static func selectsNothing(_ resource: SecurityResource, _ workloads: [Workload], rootNamespace: String)
        -> [Diagnostic]
    {
        let selector: WorkloadSelector?
        switch resource {
        case .authorizationPolicy(let policy): selector = policy.selector
        case .peerAuthentication(let policy): selector = policy.selector
        case .requestAuthentication(let policy): selector = policy.selector
        }
        let namespace = resource.id.namespace
        guard let selector, !selector.matchLabels.isEmpty else {
            // A namespace-wide resource of a namespace where no known workload runs.
            guard namespace != rootNamespace, !workloads.contains(where: { $0.namespace == namespace }) else { return [] }
            var reporter = Reporter(resource: resource.id, location: resource.location)
            reporter.add(
                .selectsNothing, "metadata.namespace",
                "no known workload runs in namespace \(namespace), so the resource applies to nothing",
                fix: "check the namespace, or list the namespace's workloads in --workloads")
            return reporter.diagnostics
        }
        let inScope = workloads.filter { namespace == rootNamespace || $0.namespace == namespace }
        guard !inScope.contains(where: { selector.matches($0.labels) }) else { return [] }
        var reporter = Reporter(resource: resource.id, location: resource.location)
        let labels = selector.matchLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        reporter.add(
            .selectsNothing, "spec.selector.matchLabels",
            "no known workload\(namespace == rootNamespace ? "" : " in namespace \(namespace)") has the labels \(labels.joined(separator: ", ")), so the policy applies to nothing",
            fix: "correct the labels to those of the intended workload")
        return reporter.diagnostics
    }
}
