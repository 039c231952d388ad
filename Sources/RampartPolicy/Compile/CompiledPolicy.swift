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

    init(_ policy: AuthorizationPolicy, order: Int) {
        id = policy.id
        name = policy.id.qualifiedName
        action = policy.action
        dryRun = policy.dryRunValue.flatMap(GoBool.parse) ?? false
        provider = policy.provider
        self.order = order
        rules = (policy.rules ?? []).enumerated().map { Self.compile($1, index: $0, namespace: policy.id.namespace) }
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
    /// without one belongs to).
    static func compile(_ rule: AuthorizationRule, index: Int, namespace: String) -> CompiledRule {
        let froms = (rule.from ?? []).enumerated().map { offset, source in
            checks(
                source?.fields ?? [:], names: RuleSource.fieldNames,
                prefix: "rules[\(index)].from[\(offset)].source", namespace: namespace)
        }
        let tos = (rule.to ?? []).enumerated().map { offset, operation in
            checks(
                operation?.fields ?? [:], names: RuleOperation.fieldNames,
                prefix: "rules[\(index)].to[\(offset)].operation", namespace: namespace)
        }
        var whens: [Check] = []
        for (offset, condition) in (rule.when ?? []).enumerated() {
            let field = "rules[\(index)].when[\(offset)]"
            guard let attribute = Attribute.forConditionKey(condition.key) else {
                whens.append(Check(attribute: .filterMetadata(condition.key), values: [], negated: false, field: field))
                continue
            }
            if !condition.values.isEmpty {
                let values = qualified(condition.values, attribute, namespace)
                whens.append(Check(attribute: attribute, values: values, negated: false, field: "\(field).values"))
            }
            if !condition.notValues.isEmpty {
                let values = qualified(condition.notValues, attribute, namespace)
                whens.append(Check(attribute: attribute, values: values, negated: true, field: "\(field).notValues"))
            }
        }
        return CompiledRule(index: index, froms: froms, tos: tos, whens: whens)
    }

    private static func checks(_ fields: [String: [String]], names: [String], prefix: String, namespace: String)
        -> [Check]
    {
        names.compactMap { name in
            guard let values = fields[name], let attribute = Attribute.forField(name) else { return nil }
            return Check(
                attribute: attribute, values: qualified(values, attribute, namespace), negated: name.hasPrefix("not"),
                field: "\(prefix).\(name)")
        }
    }

    /// Service accounts written without a namespace (`name`) belong to the policy's namespace, as
    /// in Istio: they are compared as `namespace/name`. Other values are kept as written.
    private static func qualified(_ values: [String], _ attribute: Attribute, _ namespace: String) -> [String] {
        guard attribute == .serviceAccount else { return values }
        return values.map { $0.contains("/") ? $0 : "\(namespace)/\($0)" }
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
