/// With a workload list that gives ports, the TCP ports ALLOW policies shut by accident: a port
/// where ALLOW policies apply but none of their rules can match a TCP connection (Istio drops
/// ALLOW rules with HTTP fields on TCP, and a rule whose `to` names other ports does not match),
/// so every connection to it is denied, while a rule with HTTP fields was written for it.
enum TCPPortReach {
    static func analyze(_ resources: [SecurityResource], _ workloads: [Workload], rootNamespace: String) -> [Diagnostic] {
        let allows: [Allow] = resources.compactMap {
            guard case .authorizationPolicy(let policy) = $0, policy.action == .allow,
                policy.targetRef == nil, policy.targetRefs.isEmpty, policy.dryRunValue?.lowercased() != "true"
            else { return nil }
            return Allow(policy)
        }
        guard !allows.isEmpty else { return [] }
        // One finding per first policy and port, naming every workload it concerns.
        var shut: [(policy: AuthorizationPolicy, port: Int, policies: [String], workloads: [String])] = []
        for workload in workloads {
            let tcpPorts = workload.ports.filter { !$0.isHTTP }.map(\.port)
            guard !tcpPorts.isEmpty else { continue }
            let applying = allows.filter { applies($0.policy, to: workload, rootNamespace: rootNamespace) }
            guard let first = applying.first else { continue }
            // Only where a rule meant for the port is dropped for its HTTP fields: an ALLOW policy
            // without rules (allow-nothing) shuts every port on purpose.
            for port in tcpPorts
            where !applying.contains(where: { $0.reaches(port, tcp: true) })
                && applying.contains(where: { $0.reaches(port, tcp: false) })
            {
                if let index = shut.firstIndex(where: { $0.policy.id == first.policy.id && $0.port == port }) {
                    shut[index].workloads.append(workload.description)
                } else {
                    shut.append((first.policy, port, applying.map(\.policy.id.qualifiedName), [workload.description]))
                }
            }
        }
        return shut.flatMap { finding -> [Diagnostic] in
            var reporter = Reporter(resource: finding.policy.id, location: finding.policy.location)
            let which = finding.policies.count == 1
                ? "\(finding.policies[0]) is the only ALLOW policy that applies, and none of its rules"
                : "ALLOW policies apply (\(finding.policies.joined(separator: ", "))), and none of their rules"
            reporter.add(
                .tcpPortShut, "spec.rules",
                "TCP port \(finding.port) of \(finding.workloads.joined(separator: ", ")) is denied every connection: \(which)"
                    + " can match a TCP connection to it (rules with HTTP fields are dropped on TCP, and rules whose to names"
                    + " other ports do not match)",
                fix: "add a rule for port \(finding.port) with TCP fields only (from.source, to.operation.ports), or declare the port HTTP if it is")
            return reporter.diagnostics
        }
    }

    /// Whether an ALLOW policy applies to the workload: its namespace's or the root namespace's,
    /// without a selector or with one that matches.
    private static func applies(_ policy: AuthorizationPolicy, to workload: Workload, rootNamespace: String) -> Bool {
        let namespace = policy.metadata.namespace
        guard namespace == rootNamespace || namespace == workload.namespace else { return false }
        guard let selector = policy.selector, !selector.matchLabels.isEmpty else { return true }
        return selector.matches(workload.labels)
    }

    /// An ALLOW policy's rules as far as ports are concerned, read once: whether each has HTTP
    /// fields (and so is dropped on TCP), and the `ports`/`notPorts` of its `to` entries.
    private struct Allow {
        let policy: AuthorizationPolicy
        let rules: [(httpOnly: Bool, operations: [(ports: [String], notPorts: [String])])]

        init(_ policy: AuthorizationPolicy) {
            self.policy = policy
            rules = (policy.rules ?? []).enumerated().map { index, rule in
                let compiled = CompiledPolicy.compile(rule, index: index, namespace: policy.id.namespace)
                let operations = (rule.to ?? []).compactMap { $0 }.map {
                    (ports: $0.fields["ports"] ?? [], notPorts: $0.fields["notPorts"] ?? [])
                }
                return (compiled.hasHTTPOnly, operations)
            }
        }

        /// Whether some rule can match a connection to `port`: on TCP (`tcp`), where rules with
        /// HTTP fields are dropped, or by its ports alone.
        func reaches(_ port: Int, tcp: Bool) -> Bool {
            let text = String(port)
            return rules.contains { rule in
                guard !(tcp && rule.httpOnly) else { return false }
                return rule.operations.isEmpty
                    || rule.operations.contains {
                        ($0.ports.isEmpty || $0.ports.contains(text)) && !$0.notPorts.contains(text)
                    }
            }
        }
    }
}
