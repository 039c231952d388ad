/// Validates an AuthorizationPolicy the way Istio's admission webhook does.
enum AuthorizationPolicyValidator {
    static func validate(_ policy: AuthorizationPolicy) -> [Diagnostic] {
        var reporter = Reporter(resource: policy.id, location: policy.location)
        CommonChecks.metadata(policy.metadata, &reporter)
        CommonChecks.selector(policy.selector, "spec.selector", &reporter)
        CommonChecks.targets(
            selector: policy.selector, targetRef: policy.targetRef, targetRefs: policy.targetRefs,
            targetRefsWritten: policy.targetRefsWritten, &reporter)
        checkAction(policy, &reporter)
        checkDryRun(policy, &reporter)
        if let rules = policy.rules, rules.count > 512 {
            reporter.add(
                .overLimit, "spec.rules", "the policy has \(rules.count) rules; Istio's schema allows at most 512",
                fix: "split the rules over several policies")
        }
        for (index, rule) in (policy.rules ?? []).enumerated() {
            RuleValidator(action: policy.action, prefix: "spec.rules[\(index)]", index: index).validate(rule, &reporter)
        }
        return reporter.diagnostics
    }

    private static func checkAction(_ policy: AuthorizationPolicy, _ reporter: inout Reporter) {
        if policy.action == .custom {
            if (policy.provider ?? "").isEmpty {
                reporter.add(
                    .badAction, "spec.provider.name", "a CUSTOM policy needs a non-empty provider.name",
                    fix: "name the extension provider declared in the mesh config, e.g. provider: {name: my-ext-authz}")
            }
        } else if policy.provider != nil {
            reporter.add(
                .badAction, "spec.provider",
                "provider is set but the action is \(policy.action.rawValue); a provider only goes with CUSTOM",
                fix: "remove provider, or set action: CUSTOM")
        }
        if policy.action == .deny || policy.action == .custom, (policy.rules ?? []).isEmpty {
            reporter.add(
                .missingRules, policy.rules == nil ? "spec.action" : "spec.rules",
                "a \(policy.action.rawValue) policy without rules never triggers",
                fix: "add rules; to apply it to every request use rules: [{}]")
        }
    }

    private static func checkDryRun(_ policy: AuthorizationPolicy, _ reporter: inout Reporter) {
        guard let value = policy.dryRunValue else { return }
        let field = "metadata.annotations.\(ResourceMetadata.dryRunAnnotation)"
        if GoBool.parse(value) == nil {
            reporter.add(
                .badDryRun, field, "dry-run annotation value \"\(value)\" is not a boolean",
                fix: "set the annotation to \"true\" or \"false\"")
        }
        if policy.action == .audit || policy.action == .custom {
            reporter.add(
                .badDryRun, field, "dry run is only supported for ALLOW and DENY, not \(policy.action.rawValue)",
                fix: "remove the annotation or change the action to ALLOW or DENY")
        }
    }
}
