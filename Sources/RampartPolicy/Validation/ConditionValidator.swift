/// Validates one `when` condition: its key, its values and whether CUSTOM may use it.
struct ConditionValidator {
    let action: AuthorizationPolicy.Action
    let path: String

    func validate(_ condition: RuleCondition, _ reporter: inout Reporter) {
        let key = condition.key
        if key.isEmpty {
            reporter.add(.badCondition, "\(path).key", "the condition has no key", fix: "set key, e.g. request.headers[x-id]")
            return
        }
        if condition.values.isEmpty && condition.notValues.isEmpty {
            reporter.add(
                .badCondition, path, "condition on \(key) has neither values nor notValues",
                fix: "add values or notValues")
        }
        if let problem = keyProblem(key) {
            reporter.add(.badCondition, "\(path).key", problem.message, fix: problem.fix)
            return
        }
        if action == .custom
            && (key == "source.namespace" || key == "source.serviceAccount" || key == "source.principal"
                || key == "source.trustDomain"
                || key.hasPrefix("request.auth."))
        {
            reporter.add(
                .unsupportedWithCustom, "\(path).key", "condition key \(key) cannot be used in a CUSTOM policy",
                fix: "move this condition to an ALLOW or DENY policy")
        }
        for (name, values) in [("values", condition.values), ("notValues", condition.notValues)] where !values.isEmpty {
            checkValues(key, values, field: "\(path).\(name)", &reporter)
        }
    }

    private func checkValues(_ key: String, _ values: [String], field: String, _ reporter: inout Reporter) {
        if let position = values.firstIndex(of: "") {
            reporter.add(.emptyValue, "\(field)[\(position)]", "the list holds an empty string", fix: "remove the empty value")
        }
        switch key {
        case "source.ip", "remote.ip", "destination.ip":
            for (position, value) in values.enumerated() {
                CommonChecks.ipValue(value, field: "\(field)[\(position)]", attribute: key, &reporter)
            }
        case "source.serviceAccount":
            CommonChecks.serviceAccounts(values, field: field, &reporter)
        case "destination.port":
            for (position, value) in values.enumerated() where !value.isEmpty && !CommonChecks.isValidPort(value) {
                reporter.add(
                    .badPort, "\(field)[\(position)]", "\"\(value)\" is not a port number in 0-65535",
                    fix: "write the port as a quoted number, e.g. \"8080\"")
            }
        case "source.trustDomain":
            // Istio's webhook refuses a * inside a trust domain (CheckWildcardValues).
            for (position, value) in values.enumerated() where CommonChecks.hasInnerWildcard(value) {
                reporter.add(
                    .badWildcard, "\(field)[\(position)]", "trust domain \"\(value)\" has a * in the middle; a wildcard may only lead or trail",
                    fix: "use an exact trust domain, a prefix (cluster.*), a suffix (*.local) or * for any")
            }
        case "source.namespace":
            // Every * of a namespace value is a wildcard (Istio's regex reads it as .*).
            CommonChecks.namespaceRegexes(values, field: field, &reporter)
        default:
            let regexes = key == "source.principal" ? CommonChecks.principalRegexes(values, field: field, &reporter) : []
            // Elsewhere the webhook accepts it, and the * is matched as a character.
            for (position, value) in values.enumerated() where CommonChecks.hasInnerWildcard(value) && !regexes.contains(position) {
                if key == "source.principal" && CommonChecks.hasTrustDomainPattern(value) { continue }
                reporter.add(
                    .literalWildcard, "\(field)[\(position)]",
                    "\"\(value)\" has a * in the middle; only a leading or trailing * is a wildcard, so it matches literally",
                    fix: "use a prefix (abc*) or suffix (*abc) pattern, or list the values")
            }
        }
    }

    private func keyProblem(_ key: String) -> (message: String, fix: String)? {
        if key == "destination.namespace" {
            return ("destination.namespace is not a condition; the policy's namespace already scopes it",
                    "move the policy to that namespace instead")
        }
        if key.hasPrefix("destination.labels") {
            return ("destination.labels is not a condition; the workload selector replaces it",
                    "use spec.selector.matchLabels instead")
        }
        if key == "destination.name" || key == "destination.user" {
            return ("\(key) was removed from the API and is not supported", "match on source or operation fields instead")
        }
        let mapped = [
            "request.headers", "request.experimental.inline.headers", "request.auth.claims", "experimental.envoy.filters.",
        ]
        if let base = mapped.first(where: { key.hasPrefix($0) }), Attribute.forConditionKey(key) == nil {
            let example: String
            switch base {
            case "request.auth.claims": example = "request.auth.claims[groups], or request.auth.claims[org][team] for a nested claim"
            case "experimental.envoy.filters.": example = "experimental.envoy.filters.network.mysql_proxy[db.table]"
            case "request.experimental.inline.headers": example = "request.experimental.inline.headers[x-user]"
            default: example = "request.headers[x-user]"
            }
            return ("key \(key) must have the form \(base.hasSuffix(".") ? base + "<filter>" : base)[name] with a non-empty name",
                    "write the key like \(example)")
        }
        if Attribute.forConditionKey(key) == nil {
            return ("unknown condition key \(key)",
                    "use a supported key: request.headers[..], source.ip, remote.ip, source.namespace, source.serviceAccount, source.principal, source.trustDomain, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[..], destination.ip, destination.port, connection.sni, experimental.envoy.filters.*")
        }
        return nil
    }
}
