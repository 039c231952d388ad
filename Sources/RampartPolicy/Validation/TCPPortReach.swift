/// With a workload list that gives ports, the TCP ports ALLOW policies shut by accident: a port
/// where ALLOW policies apply but none of their rules can match a TCP connection (Istio drops
/// ALLOW rules with HTTP fields on TCP, and a rule whose `to` names other ports does not match),
/// so every connection to it is denied, while a rule with HTTP fields was written for it.
enum TCPPortReach {
    static func analyze(_ resources: [SecurityResource], _ workloads: [Workload], rootNamespace: String) -> [Diagnostic] {
        let allows: [AuthorizationPolicy] = resources.compactMap {
            guard case .authorizationPolicy(let policy) = $0, policy.action == .allow,
                policy.targetRef == nil, policy.targetRefs.isEmpty, policy.dryRunValue?.lowercased() != "true"
            else { return nil }
            return policy
        }
        guard !allows.isEmpty else { return [] }
        // One finding per first policy and port, naming every workload it concerns.
        var shut: [(policy: AuthorizationPolicy, port: Int, policies: [String], workloads: [String])] = []
        for workload in workloads {
            let tcpPorts = workload.ports.filter { !$0.isHTTP }.map(\.port)
            guard !tcpPorts.isEmpty else { continue }
            let applying = allows.filter { applies($0, to: workload, rootNamespace: rootNamespace) }
            guard let first = applying.first else { continue }
            // Only where a rule meant for the port is dropped for its HTTP fields: an ALLOW policy
            // without rules (allow-nothing) shuts every port on purpose.
            for port in tcpPorts
            where !applying.contains(where: { reaches($0, port: port, tcp: true) })
                && applying.contains(where: { reaches($0, port: port, tcp: false) })
            {
                if let index = shut.firstIndex(where: { $0.policy.id == first.id && $0.port == port }) {
                    shut[index].workloads.append(workload.description)
                } else {
                    shut.append((first, port, applying.map(\.id.qualifiedName), [workload.description]))
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

    /// Whether some rule of the policy can match a connection to `port`: on TCP (`tcp`), where
    /// rules with HTTP fields are dropped, or by its ports alone.
    private static func reaches(_ policy: AuthorizationPolicy, port: Int, tcp: Bool) -> Bool {
        for (index, rule) in (policy.rules ?? []).enumerated() {
            if tcp {
                let compiled = CompiledPolicy.compile(rule, index: index, namespace: policy.id.namespace)
                guard !compiled.hasHTTPOnly else { continue }
            }
            let operations = (rule.to ?? []).compactMap { $0 }
            if operations.isEmpty { return true }
            for operation in operations {
                let ports = operation.fields["ports"] ?? []
                let notPorts = operation.fields["notPorts"] ?? []
                if (ports.isEmpty || ports.contains(String(port))) && !notPorts.contains(String(port)) { return true }
            }
        }
        return false
    }
}
