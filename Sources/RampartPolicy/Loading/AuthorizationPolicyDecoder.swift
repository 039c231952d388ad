import Yams

/// Decodes the spec of an AuthorizationPolicy.
struct AuthorizationPolicyDecoder {
    let context: DecodeContext

    func decode(_ spec: Node?, metadata: ResourceMetadata, location: SourceLocation) -> AuthorizationPolicy? {
        var selector: WorkloadSelector?
        var targetRef: PolicyTargetReference?
        var targetRefs: [PolicyTargetReference] = []
        var targetRefsWritten = false
        var action: AuthorizationPolicy.Action?
        var provider: String?
        var rules: [AuthorizationRule]?
        if let spec {
            let allowed: Set<String> = ["selector", "targetRef", "targetRefs", "rules", "action", "provider"]
            for (key, value) in context.mapping(spec, "spec", allowed: allowed, what: "AuthorizationPolicy spec") ?? [] {
                let path = "spec.\(key)"
                if DecodeContext.isNull(value) { continue }
                switch key {
                case "selector": selector = context.selector(value, path)
                case "targetRef": targetRef = context.targetRef(value, path)
                case "targetRefs":
                    targetRefsWritten = true
                    targetRefs = (context.list(value, path) ?? []).compactMap { context.targetRef($0.node, $0.path) }
                case "action":
                    guard let raw = context.string(value, path) else { continue }
                    action = AuthorizationPolicy.Action(rawValue: raw)
                    if action == nil {
                        context.report(
                            .badEnum, path, value, "unknown action \"\(raw)\"; expected ALLOW, DENY, AUDIT or CUSTOM",
                            fix: "use one of ALLOW, DENY, AUDIT, CUSTOM (upper case)")
                    }
                case "provider":
                    provider = ""
                    for (field, node) in context.mapping(value, path, allowed: ["name"], what: "provider") ?? [] {
                        provider = context.string(node, "\(path).\(field)") ?? ""
                    }
                case "rules":
                    rules = (context.list(value, path) ?? []).map { rule($0.node, $0.path) }
                default: break
                }
            }
        }
        return AuthorizationPolicy(
            metadata: metadata, location: location, selector: selector, targetRef: targetRef, targetRefs: targetRefs,
            targetRefsWritten: targetRefsWritten,
            action: action, provider: provider, rules: rules)
    }

    private func rule(_ node: Node, _ path: String) -> AuthorizationRule {
        var from: [RuleSource?]?
        var to: [RuleOperation?]?
        var when: [RuleCondition]?
        if DecodeContext.isNull(node) {
            // Istio's webhook refuses a nil rule; read as `{}` it would match every request.
            context.report(
                .emptyClause, path, node, "the rule is null (a bare -), which Istio refuses",
                fix: "write the rule's from, to and when, write {} for a rule that matches every request, or remove the dash")
            return AuthorizationRule(from: nil, to: nil, when: nil)
        }
        for (key, value) in context.mapping(node, path, allowed: ["from", "to", "when"], what: "a rule") ?? [] {
            let fieldPath = "\(path).\(key)"
            if DecodeContext.isNull(value) { continue }
            let items = context.list(value, fieldPath) ?? []
            switch key {
            case "from":
                from = items.map { item in
                    clause(item.node, item.path, name: "source").map {
                        RuleSource(fields: fields($0.node, $0.path, names: RuleSource.fieldNames, what: "a source"))
                    }
                }
            case "to":
                to = items.map { item in
                    clause(item.node, item.path, name: "operation").map {
                        RuleOperation(
                            fields: fields($0.node, $0.path, names: RuleOperation.fieldNames, what: "an operation"))
                    }
                }
            case "when":
                when = items.compactMap { condition($0.node, $0.path) }
            default: break
            }
        }
        return AuthorizationRule(from: from, to: to, when: when)
    }

    /// Reads `{source: ...}` or `{operation: ...}`, returning the inner node when present.
    private func clause(_ node: Node, _ path: String, name: String) -> (node: Node, path: String)? {
        if DecodeContext.isNull(node) { return nil }
        var inner: (Node, String)?
        for (key, value) in context.mapping(node, path, allowed: [name], what: "a \(name) clause") ?? []
        where !DecodeContext.isNull(value) {
            inner = (value, "\(path).\(key)")
        }
        return inner
    }

    private func fields(_ node: Node, _ path: String, names: [String], what: String) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for (key, value) in context.mapping(node, path, allowed: Set(names), what: what) ?? []
        where !DecodeContext.isNull(value) {
            result[key] = context.stringList(value, "\(path).\(key)") ?? []
        }
        return result
    }

    private func condition(_ node: Node, _ path: String) -> RuleCondition? {
        var key = "", values: [String] = [], notValues: [String] = []
        let allowed: Set<String> = ["key", "values", "notValues"]
        guard let entries = context.mapping(node, path, allowed: allowed, what: "a condition") else { return nil }
        for (field, value) in entries where !DecodeContext.isNull(value) {
            let fieldPath = "\(path).\(field)"
            switch field {
            case "key": key = context.string(value, fieldPath) ?? ""
            case "values": values = context.stringList(value, fieldPath) ?? []
            case "notValues": notValues = context.stringList(value, fieldPath) ?? []
            default: break
            }
        }
        return RuleCondition(key: key, values: values, notValues: notValues)
    }
}
