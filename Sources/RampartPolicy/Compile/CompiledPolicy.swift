/// An AuthorizationPolicy compiled for evaluation: its rules as checks, plus where it applies.
///
/// A class so the per-request loops pass policies by reference instead of copying their fields.
final class CompiledPolicy: Sendable {
    let id: ResourceID
    /// `namespace/name`, precomputed so decisions do not allocate it.
    let name: String
    let action: AuthorizationPolicy.Action
    let dryRun: Bool
    let provider: String?
    let rules: [CompiledRule]
    /// Rules usable on TCP for ALLOW: those without HTTP-only checks.
    let tcpRules: [CompiledRule]
    let order: Int

    init(_ policy: AuthorizationPolicy, order: Int, trustDomains: TrustDomainBundle = TrustDomainBundle()) {
        id = policy.id
        name = policy.id.qualifiedName
        action = policy.action
        dryRun = policy.dryRunValue.flatMap(GoBool.parse) ?? false
        provider = policy.provider
        self.order = order
        rules = (policy.rules ?? []).enumerated().map {
            Self.compile($1, index: $0, namespace: policy.id.namespace, trustDomains: trustDomains)
        }
        tcpRules = action == .allow ? rules.filter { !$0.hasHTTPOnly } : rules
    }

    /// The first matching rule index, or `nil`.
    @inline(__always)
    func firstMatch(_ request: PreparedRequest) -> Int? {
        let dropHTTP = !request.isHTTP
        return (dropHTTP ? tcpRules : rules).withUnsafeBufferPointer { candidates in
            for index in candidates.indices where candidates[index].matches(request, dropHTTP: dropHTTP) {
                return candidates[index].index
            }
            return nil
        }
    }

    /// Compiles one rule of a policy in `namespace` (the namespace a service account written
    /// without one belongs to), reading principals against the mesh's `trustDomains`.
    static func compile(
        _ rule: AuthorizationRule, index: Int, namespace: String, trustDomains: TrustDomainBundle = TrustDomainBundle()
    ) -> CompiledRule {
        let scope = Scope(namespace: namespace, trustDomains: trustDomains)
        let froms = (rule.from ?? []).enumerated().map { offset, source in
            checks(
                source?.fields ?? [:], names: RuleSource.fieldNames,
                prefix: "rules[\(index)].from[\(offset)].source", scope: scope)
        }
        let tos = (rule.to ?? []).enumerated().map { offset, operation in
            checks(
                operation?.fields ?? [:], names: RuleOperation.fieldNames,
                prefix: "rules[\(index)].to[\(offset)].operation", scope: scope)
        }
        var whens: [Check] = []
        for (offset, condition) in (rule.when ?? []).enumerated() {
            let field = "rules[\(index)].when[\(offset)]"
            guard let attribute = Attribute.forConditionKey(condition.key) else {
                whens.append(Check(attribute: .filterMetadata(condition.key), values: [], negated: false, field: field))
                continue
            }
            if !condition.values.isEmpty {
                let values = scope.qualified(condition.values, attribute)
                whens.append(Check(attribute: attribute, values: values, negated: false, field: "\(field).values"))
            }
            if !condition.notValues.isEmpty {
                let values = scope.qualified(condition.notValues, attribute)
                whens.append(Check(attribute: attribute, values: values, negated: true, field: "\(field).notValues"))
            }
        }
        return CompiledRule(index: index, froms: froms, tos: tos, whens: whens)
    }

    private static func checks(_ fields: [String: [String]], names: [String], prefix: String, scope: Scope)
        -> [Check]
    {
        // A field with an empty list is not set, as Istio reads it (`principals: []` asks nothing).
        names.compactMap { name in
            guard let values = fields[name], !values.isEmpty, let attribute = Attribute.forField(name) else { return nil }
            return Check(
                attribute: attribute, values: scope.qualified(values, attribute), negated: name.hasPrefix("not"),
                field: "\(prefix).\(name)")
        }
    }

    /// What a policy's values are read against.
    private struct Scope {
        let namespace: String
        let trustDomains: TrustDomainBundle

        /// Service accounts written without a namespace (`name`) belong to the policy's namespace,
        /// as in Istio: they are compared as `namespace/name`. Principals stand for every trust
        /// domain of the mesh (see `TrustDomainBundle`). Other values are kept as written.
        func qualified(_ values: [String], _ attribute: Attribute) -> [String] {
            switch attribute {
            case .serviceAccount: return values.map { $0.contains("/") ? $0 : "\(namespace)/\($0)" }
            case .sourcePrincipal: return trustDomains.expand(values)
            default: return values
            }
        }
    }
}

/// Go's `strconv.ParseBool`, which Istio uses for the dry-run annotation.
enum GoBool {
    static func parse(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default: return nil
        }
    }
}
