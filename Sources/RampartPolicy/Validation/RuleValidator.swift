/// Validates one AuthorizationPolicy rule: its sources, operations and conditions.
struct RuleValidator {
    let action: AuthorizationPolicy.Action
    let prefix: String
    let index: Int

    private static let customForbiddenSources: Set<String> = [
        "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces", "notNamespaces",
        "serviceAccounts", "notServiceAccounts", "trustDomains", "notTrustDomains",
    ]
    private static let ipFields: Set<String> = ["ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"]

    func validate(_ rule: AuthorizationRule, _ reporter: inout Reporter) {
        if let from = rule.from {
            if from.isEmpty { emptyClause("\(prefix).from", "from", &reporter) }
            if from.count > 512 {
                reporter.add(
                    .overLimit, "\(prefix).from", "rule \(index) has \(from.count) from entries; Istio's schema allows at most 512",
                    fix: "merge the sources into fewer entries (each field takes a list), or split the rule")
            }
            for (offset, source) in from.enumerated() {
                let path = "\(prefix).from[\(offset)]"
                guard let source else {
                    reporter.add(
                        .emptyClause, path, "from entry \(offset) of rule \(index) has no source",
                        fix: "write the entry as - source: {principals: [...]} or remove it")
                    continue
                }
                // Istio counts a field with an empty list as not set.
                if source.fields.values.allSatisfy(\.isEmpty) {
                    let what = source.fields.isEmpty ? "sets no field" : "sets only empty lists (\(Self.names(source.fields)))"
                    reporter.add(
                        .emptyClause, "\(path).source", "the source of rule \(index) \(what), which Istio refuses",
                        fix: "set at least one source field to a non-empty list, or remove the from entry to match any source")
                }
                checkSource(source, path: "\(path).source", &reporter)
            }
        }
        if let to = rule.to {
            if to.isEmpty { emptyClause("\(prefix).to", "to", &reporter) }
            for (offset, operation) in to.enumerated() {
                let path = "\(prefix).to[\(offset)]"
                guard let operation else {
                    reporter.add(
                        .emptyClause, path, "to entry \(offset) of rule \(index) has no operation",
                        fix: "write the entry as - operation: {paths: [...]} or remove it")
                    continue
                }
                if operation.fields.values.allSatisfy(\.isEmpty) {
                    let what = operation.fields.isEmpty ? "sets no field" : "sets only empty lists (\(Self.names(operation.fields)))"
                    reporter.add(
                        .emptyClause, "\(path).operation", "the operation of rule \(index) \(what), which Istio refuses",
                        fix: "set at least one operation field to a non-empty list, or remove the to entry to match any operation")
                }
                checkOperation(operation, path: "\(path).operation", &reporter)
            }
        }
        for (offset, condition) in (rule.when ?? []).enumerated() {
            ConditionValidator(action: action, path: "\(prefix).when[\(offset)]").validate(condition, &reporter)
        }
    }

    /// The names of a source's or operation's fields, sorted, for messages.
    private static func names(_ fields: [String: [String]]) -> String {
        fields.keys.sorted().joined(separator: ", ")
    }

    private func emptyClause(_ path: String, _ name: String, _ reporter: inout Reporter) {
        reporter.add(
            .emptyClause, path, "`\(name)` of rule \(index) is an empty list",
            fix: "remove `\(name)` to match anything, or add entries")
    }

    private func checkSource(_ source: RuleSource, path: String, _ reporter: inout Reporter) {
        for name in RuleSource.fieldNames {
            guard let values = source.fields[name] else { continue }
            let field = "\(path).\(name)"
            checkValues(values, field: field, &reporter, wildcard: Self.wildcardReading(name))
            if action == .custom && Self.customForbiddenSources.contains(name) {
                reporter.add(
                    .unsupportedWithCustom, field, "\(name) cannot be used in a CUSTOM policy",
                    fix: "match on ipBlocks, remoteIpBlocks or operation fields, or move this rule to an ALLOW/DENY policy")
            }
            if Self.ipFields.contains(name) {
                for (position, value) in values.enumerated() {
                    CommonChecks.ipValue(value, field: "\(field)[\(position)]", &reporter)
                }
            }
            if name == "serviceAccounts" || name == "notServiceAccounts" {
                CommonChecks.serviceAccounts(values, field: field, &reporter)
            }
            if name == "trustDomains" || name == "notTrustDomains" {
                for (position, value) in values.enumerated() where CommonChecks.hasInnerWildcard(value) {
                    reporter.add(
                        .badWildcard, "\(field)[\(position)]", "trust domain \"\(value)\" has a * in the middle; a wildcard may only lead or trail",
                        fix: "use an exact trust domain, a prefix (cluster.*), a suffix (*.local) or * for any")
                }
            }
        }
        // As Istio's CRD schema: a source naming service accounts names no principals or
        // namespaces, positive or negated; a field written with an empty list counts as written.
        func written(_ names: String...) -> Bool { names.contains { source.fields[$0] != nil } }
        if written("serviceAccounts", "notServiceAccounts") && written("principals", "notPrincipals", "namespaces", "notNamespaces") {
            let field = source.fields["serviceAccounts"] != nil ? "serviceAccounts" : "notServiceAccounts"
            reporter.add(
                .badServiceAccount, "\(path).\(field)",
                "serviceAccounts or notServiceAccounts cannot be combined with principals, notPrincipals, namespaces or notNamespaces in one source",
                fix: "use the service account fields alone, or express the identities with principals and namespaces")
        }
    }

    private func checkOperation(_ operation: RuleOperation, path: String, _ reporter: inout Reporter) {
        for name in RuleOperation.fieldNames {
            guard let values = operation.fields[name] else { continue }
            let field = "\(path).\(name)"
            checkValues(values, field: field, &reporter, paths: name.hasSuffix("aths"))
            if name == "ports" || name == "notPorts" {
                for (position, value) in values.enumerated() where !value.isEmpty && !CommonChecks.isValidPort(value) {
                    let range = value.split(separator: "-").count == 2 && value.split(separator: "-").allSatisfy { CommonChecks.isValidPort(String($0)) }
                    reporter.add(
                        .badPort, "\(field)[\(position)]",
                        range ? "\"\(value)\" is a port range; Istio takes single ports only" : "\"\(value)\" is not a port number in 0-65535",
                        fix: range ? "list each port as a quoted number, e.g. [\"8080\", \"8081\"]" : "write the port as a quoted number, e.g. \"8080\"")
                }
            }
            if name == "paths" || name == "notPaths" {
                for (position, value) in values.enumerated() where !value.isEmpty {
                    if let problem = PathTemplateRules.problem(value) {
                        reporter.add(
                            .badPathTemplate, "\(field)[\(position)]", "path \"\(value)\" is not supported: \(problem)",
                            fix: "use {*} for one segment and {**} for any number of segments, each as a whole "
                                + "segment with {**} the last operator, and only literal characters elsewhere")
                    }
                }
            }
        }
    }

    /// How a field reads a `*` inside a value.
    enum WildcardReading {
        /// Only a leading or trailing `*` is a wildcard.
        case ends
        /// Every `*` is a wildcard (Istio's namespace regex).
        case everywhere
        /// As `ends`, but a principal's trust domain may be a `prefix*` or `*suffix` pattern, which
        /// is read against the mesh's trust domains (see `TrustDomainBundle`).
        case principal
        /// Paths, whose templates are checked on their own.
        case path
        /// Trust domains, where a `*` in the middle is an error of its own (RP030), not a warning.
        case refused
    }

    static func wildcardReading(_ field: String) -> WildcardReading {
        switch field {
        case "namespaces", "notNamespaces": return .everywhere
        case "principals", "notPrincipals": return .principal
        case "trustDomains", "notTrustDomains": return .refused
        default: return .ends
        }
    }

    private func checkValues(
        _ values: [String], field: String, _ reporter: inout Reporter, paths: Bool = false, wildcard: WildcardReading = .ends
    ) {
        if let position = values.firstIndex(of: "") {
            reporter.add(.emptyValue, "\(field)[\(position)]", "the list holds an empty string", fix: "remove the empty value")
        }
        let reading = paths ? .path : wildcard
        let regexes = reading == .principal ? CommonChecks.principalRegexes(values, field: field, &reporter) : []
        if reading == .everywhere { CommonChecks.namespaceRegexes(values, field: field, &reporter) }
        for (position, value) in values.enumerated() where CommonChecks.hasInnerWildcard(value) && !regexes.contains(position) {
            switch reading {
            case .everywhere, .refused: continue
            case .path where value.contains("{"): continue  // a template, checked on its own
            case .path:
                reporter.add(
                    .literalWildcard, "\(field)[\(position)]",
                    "\"\(value)\" has a * in the middle; only a leading or trailing * is a wildcard in a path, so it matches literally",
                    fix: "use a template for the segments that vary ({*} for one segment, {**} for any number), e.g. "
                        + "\"\(value.replacingOccurrences(of: "/*/", with: "/{*}/"))\", or a prefix (/api/*) or suffix (*.json) pattern")
                continue
            case .principal where CommonChecks.hasTrustDomainPattern(value): continue
            case .principal, .ends: break
            }
            reporter.add(
                .literalWildcard, "\(field)[\(position)]",
                "\"\(value)\" has a * in the middle; only a leading or trailing * is a wildcard, so it matches literally",
                fix: "use a prefix (abc*) or suffix (*abc) pattern")
        }
    }
}

/// Rules for paths with `{*}`/`{**}` templates, as Istio's webhook applies them to `paths` and
/// `notPaths`.
///
/// The path is split into segments after its leading and trailing slashes. `{*}` and `{**}`
/// must each be a whole segment, and nothing may follow `{**}` but literal segments. Braces
/// anywhere else are refused in every path, template or not (`/{name}` is a named variable,
/// which Envoy's templates do not support). In a path that holds a template, every literal
/// segment must be non-empty and made of RFC 3986 path characters (`pchar`) other than `*`.
enum PathTemplateRules {
    /// What is wrong with a path, or `nil`.
    static func problem(_ path: String) -> String? {
        let isTemplate = PathTemplate.isTemplate(path)
        var trimmed = Substring(path)
        while trimmed.first == "/" { trimmed.removeFirst() }
        while trimmed.last == "/" { trimmed.removeLast() }
        var sawMatchAny = false
        for segment in trimmed.split(separator: "/", omittingEmptySubsequences: false) {
            if segment == "{*}" || segment == "{**}" {
                if sawMatchAny { return "{**} must be the last operator, but \(segment) follows it" }
                sawMatchAny = segment == "{**}"
                continue
            }
            if segment.contains(where: { $0 == "{" || $0 == "}" }) {
                return "segment \"\(segment)\" has a brace outside {*} or {**}"
            }
            if isTemplate {
                if segment.isEmpty { return "a path template may not have an empty segment (//)" }
                if let bad = segment.unicodeScalars.first(where: { !isLiteral($0) }) {
                    return "segment \"\(segment)\" of a path template has \"\(bad)\", which is not a literal path "
                        + "character (letters, digits, -._~%!$&'()+,;:@= only; no *)"
                }
            }
        }
        return nil
    }

    /// RFC 3986 `pchar` without `*`: unreserved, `%`, sub-delims other than `*`, `:`, `@`.
    private static func isLiteral(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9": true
        case "-", ".", "_", "~", "%", "!", "$", "&", "'", "(", ")", "+", ",", ";", ":", "@", "=": true
        default: false
        }
    }
}
