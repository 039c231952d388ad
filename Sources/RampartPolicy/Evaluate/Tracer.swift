/// Receives evaluation events; the no-op version compiles away on the hot path.
protocol Tracer {
    mutating func peer(_ modes: PeerModes, port: Int?, mode: MTLSMode, plaintext: Bool)
    mutating func authn(_ providers: [JWTProvider], _ outcome: AuthnOutcome, token: JWTOutcome?)
    mutating func policy(_ policy: CompiledPolicy, _ rule: Int?, _ request: PreparedRequest)
    /// The policies of `policies` after `decider` (all of them when it is not among them), which
    /// apply but were not evaluated because `decider` had already `decided` (denied, allowed).
    mutating func notReached(_ policies: [CompiledPolicy], after decider: CompiledPolicy, _ decided: String)
    /// The policies that apply but were not evaluated because the request was refused before
    /// any of them (`why`).
    mutating func refusedFirst(_ policies: [CompiledPolicy], _ why: String)
}

/// Records nothing.
struct NoTrace: Tracer {
    @inline(__always) mutating func peer(_ modes: PeerModes, port: Int?, mode: MTLSMode, plaintext: Bool) {}
    @inline(__always) mutating func authn(_ providers: [JWTProvider], _ outcome: AuthnOutcome, token: JWTOutcome?) {}
    @inline(__always) mutating func policy(_ policy: CompiledPolicy, _ rule: Int?, _ request: PreparedRequest) {}
    @inline(__always) mutating func notReached(_ policies: [CompiledPolicy], after decider: CompiledPolicy, _ decided: String) {}
    @inline(__always) mutating func refusedFirst(_ policies: [CompiledPolicy], _ why: String) {}
}

/// Records every step for `explain`.
struct RecordingTrace: Tracer {
    var steps: [ExplainTrace.PolicyStep] = []

    mutating func peer(_ modes: PeerModes, port: Int?, mode: MTLSMode, plaintext: Bool) {
        let from = modes.sources.isEmpty ? "(none)" : modes.sources.joined(separator: " -> ")
        var notes = modes.explanation(port: port)
        notes += modes.skipped.map { "\($0.policy) \($0.reason)" }
        switch (mode, plaintext) {
        case (.strict, true):
            notes.append("the connection is plaintext: STRICT refuses it before any AuthorizationPolicy is evaluated")
        case (.disable, false):
            notes.append(
                "DISABLE: the peer's certificate is not used, so principals, namespaces and source.* identity"
                    + " conditions see no identity")
        case (.permissive, true), (.disable, true):
            notes.append(
                "the connection is plaintext: accepted, with no peer identity (principals and namespaces cannot match)")
        default:
            break
        }
        steps.append(ExplainTrace.PolicyStep(policy: from, kind: "PeerAuthentication", dryRun: false, notes: notes))
    }

    mutating func authn(_ providers: [JWTProvider], _ outcome: AuthnOutcome, token: JWTOutcome?) {
        guard !providers.isEmpty else {
            // A token with no RequestAuthentication to check it: said, since the policies that
            // read a request principal then never match.
            if token?.present == true {
                steps.append(
                    ExplainTrace.PolicyStep(
                        policy: "(none)", kind: "RequestAuthentication", dryRun: false,
                        notes: [
                            "no RequestAuthentication with jwtRules applies to this workload, so the token is not checked: the request has no request principal or claims"
                        ]))
            }
            return
        }
        var notes = providers.map { rule -> String in
            let presence = rule.rule.presence.map { " (presence \($0.rawValue))" } ?? ""
            return "jwtRules[\(rule.ruleIndex)] of \(rule.policy): issuer \(rule.rule.issuer)\(presence)"
        }
        if let rejection = outcome.rejection {
            notes.append("rejected: \(rejection.message())")
        } else if let principal = outcome.principal {
            notes.append("request principal \(principal)")
        } else if let token, token.present, token.ignored || !token.valid {
            let why = token.failure.map { " (\($0))" } ?? ""
            notes.append("the token failed\(why) a rule with presence IGNORED, so it is ignored: no request principal")
        } else if token?.present == true {
            notes.append("the token is not checked on a CORS preflight: no request principal")
        } else {
            notes.append("no token: no request principal")
        }
        steps.append(
            ExplainTrace.PolicyStep(
                policy: Set(providers.map(\.policy)).sorted().joined(separator: ", "), kind: "RequestAuthentication",
                dryRun: false, notes: notes))
    }

    mutating func policy(_ policy: CompiledPolicy, _ rule: Int?, _ request: PreparedRequest) {
        let dropHTTP = !request.isHTTP
        var notes: [String] = []
        var rules: [ExplainTrace.RuleStep] = []
        // Only the root namespace's policies reach workloads of another namespace.
        if policy.id.namespace != request.request.destination.namespace {
            notes.append("from the root namespace \(policy.id.namespace), whose policies apply in every namespace")
        }
        if policy.action == .custom { notes.append("provider \(policy.provider ?? "(none)"): asked only when a rule matches") }
        if policy.rules.isEmpty { notes.append("no rules: matches nothing") }
        for candidate in policy.rules {
            let label = "rules[\(candidate.index)]"
            let httpOnly = dropHTTP ? Array(Set(candidate.httpOnlyFields)).sorted() : []
            if dropHTTP && policy.action == .allow && candidate.hasHTTPOnly {
                notes.append("\(label): skipped on TCP (an ALLOW rule with HTTP-only fields: \(httpOnly.joined(separator: ", ")))")
                rules.append(step(candidate, .skippedOnTCP, httpOnly: httpOnly))
            } else if let failure = candidate.firstFailure(request, dropHTTP: dropHTTP) {
                notes.append("\(label): \(failure)")
                rules.append(
                    step(candidate, .notMatched, failures: candidate.failures(request, dropHTTP: dropHTTP), httpOnly: httpOnly))
            } else {
                let matched = candidate.fieldsMatched(request, dropHTTP: dropHTTP)
                let ignored = httpOnly.joined(separator: ", ")
                if matched.isEmpty && !httpOnly.isEmpty {
                    notes.append("\(label): matches every TCP request: its fields are all HTTP-only (\(ignored)), and TCP ignores them")
                } else {
                    let dropped = httpOnly.isEmpty ? "" : " (HTTP-only fields ignored on TCP: \(ignored))"
                    notes.append("\(label): \(candidate.matchedFields(request, dropHTTP: dropHTTP))\(dropped)")
                }
                rules.append(step(candidate, .matched, matched: matched, httpOnly: httpOnly))
                if candidate.index == rule { break }
            }
        }
        steps.append(
            ExplainTrace.PolicyStep(
                policy: policy.name, kind: policy.action.rawValue, dryRun: policy.dryRun, notes: notes,
                outcome: rule == nil ? .notMatched : .matched, matchedRule: rule, rules: rules))
    }

    private func step(
        _ rule: CompiledRule, _ outcome: ExplainTrace.RuleStep.Outcome, failures: [ExplainTrace.FieldFailure] = [],
        matched: [String] = [], httpOnly: [String]
    ) -> ExplainTrace.RuleStep {
        ExplainTrace.RuleStep(
            index: rule.index, outcome: outcome, failures: failures, matchedFields: matched, httpOnlyFields: httpOnly)
    }

    mutating func refusedFirst(_ policies: [CompiledPolicy], _ why: String) {
        for policy in policies {
            steps.append(
                ExplainTrace.PolicyStep(
                    policy: policy.name, kind: policy.action.rawValue, dryRun: false, notes: ["not evaluated: \(why)"],
                    outcome: .notEvaluated))
        }
    }

    mutating func notReached(_ policies: [CompiledPolicy], after decider: CompiledPolicy, _ decided: String) {
        let start = policies.firstIndex { $0 === decider }.map { $0 + 1 } ?? 0
        for policy in policies[start...] {
            steps.append(
                ExplainTrace.PolicyStep(
                    policy: policy.name, kind: policy.action.rawValue, dryRun: false,
                    notes: ["not evaluated: the request was already \(decided) by \(decider.name)"],
                    outcome: .notEvaluated))
        }
    }
}
