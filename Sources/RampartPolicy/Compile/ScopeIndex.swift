/// A label `key=value` pair used as an index key.
struct LabelKey: Sendable, Hashable {
    let key: String
    let value: String
}

/// A value with the scope it applies to.
struct Scoped<Value: Sendable>: Sendable {
    let value: Value
    let namespace: String
    /// `nil`: every workload of the namespace; otherwise any selector matching selects the workload.
    let selectors: [WorkloadSelector]?
    let order: Int
    /// Whether it applies only in its own namespace, even from the root namespace (a policy
    /// attached by `targetRefs`).
    var namespaceBound = false
}

/// Finds the policies that apply to a workload without looking at the others.
///
/// Namespace-wide entries are listed per namespace. Entries with selectors are filed under one label
/// pair of each selector (its first in sorted order), so a lookup only visits entries that share at
/// least one label with the workload, then checks their whole selector. Entries of the root
/// namespace apply in every namespace.
struct ScopeIndex<Value: Sendable>: Sendable {
    let rootNamespace: String
    private let wide: [String: [Scoped<Value>]]
    private let byLabel: [String: [LabelKey: [Scoped<Value>]]]

    init(rootNamespace: String, entries: [Scoped<Value>]) {
        self.rootNamespace = rootNamespace
        var wide: [String: [Scoped<Value>]] = [:]
        var byLabel: [String: [LabelKey: [Scoped<Value>]]] = [:]
        for entry in entries {
            guard let selectors = entry.selectors else {
                wide[entry.namespace, default: []].append(entry)
                continue
            }
            for selector in selectors {
                guard let anchor = selector.matchLabels.min(by: { $0.key < $1.key }) else {
                    wide[entry.namespace, default: []].append(entry)
                    continue
                }
                byLabel[entry.namespace, default: [:]][LabelKey(key: anchor.key, value: anchor.value), default: []]
                    .append(entry)
            }
        }
        self.wide = wide
        self.byLabel = byLabel
    }

    /// The entries applying to a workload, in load order.
    func applicable(namespace: String, labels: [String: String]) -> [Value] {
        var found: [Scoped<Value>] = []
        collect(namespace, labels, into: &found)
        if namespace != rootNamespace { collect(rootNamespace, labels, into: &found, fromRoot: true) }
        if found.count > 1 { found.sort { $0.order < $1.order } }
        var result: [Value] = []
        result.reserveCapacity(found.count)
        var last = -1
        for entry in found where entry.order != last {
            result.append(entry.value)
            last = entry.order
        }
        return result
    }

    private func collect(
        _ namespace: String, _ labels: [String: String], into found: inout [Scoped<Value>], fromRoot: Bool = false
    ) {
        if let entries = wide[namespace] { found += entries }
        guard let index = byLabel[namespace], !labels.isEmpty else { return }
        for (key, value) in labels {
            guard let entries = index[LabelKey(key: key, value: value)] else { continue }
            for entry in entries
            where !(fromRoot && entry.namespaceBound) && entry.selectors?.contains(where: { $0.matches(labels) }) ?? true {
                found.append(entry)
            }
        }
    }

    /// Where a policy in `namespace` applies, as Istio attaches it (`ShouldAttachPolicy`): with
    /// target references, only to the Gateways they name in the policy's own namespace (the
    /// workloads labelled with the gateway's name), whatever the selector says and even from the
    /// root namespace; references to other kinds attach it to no workload here; otherwise by its
    /// selector (`nil`: namespace-wide).
    static func attachment(
        namespace: String, selector: WorkloadSelector?, targetRef: PolicyTargetReference?,
        targetRefs: [PolicyTargetReference]
    ) -> (selectors: [WorkloadSelector]?, namespaceBound: Bool) {
        let targets = (targetRef.map { [$0] } ?? []) + targetRefs
        guard !targets.isEmpty else {
            guard let selector, !selector.matchLabels.isEmpty else { return (nil, false) }
            return ([selector], false)
        }
        let gateways = targets.filter { target in
            let sameNamespace = (target.namespace ?? "").isEmpty || target.namespace == namespace
            return target.kind == "Gateway" && target.group == "gateway.networking.k8s.io" && sameNamespace
        }
        return (gateways.map { WorkloadSelector(matchLabels: [PolicyTargetReference.gatewayNameLabel: $0.name]) }, true)
    }
}
