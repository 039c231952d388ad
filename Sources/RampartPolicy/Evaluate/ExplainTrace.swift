import Foundation

/// A record of every policy considered for a request and how each of its rules fared.
public struct ExplainTrace: Sendable, Hashable {
    /// What became of one policy.
    public enum Outcome: String, Sendable, Hashable {
        /// A rule of it matched the request.
        case matched
        /// It was evaluated and no rule matched.
        case notMatched = "not matched"
        /// It applies, but an earlier policy had already decided.
        case notEvaluated = "not evaluated"
        /// It does not apply to the destination workload.
        case notApplied = "not applied"
    }

    /// One field of a rule that the request failed: the field's path, the `when` key it reads, what
    /// the request had (`nil`: nothing, as `missing` says) and the values it was compared with.
    public struct FieldFailure: Sendable, Hashable {
        /// The field's path in the policy (`rules[0].to[0].operation.paths`).
        public let field: String
        /// The attribute a `when` condition reads (`request.headers[x-env]`), `nil` for other fields.
        public let key: String?
        /// What the request had for the field, `nil` when it had nothing.
        public let value: String?
        /// Why the request had nothing (`no path`, `no peer identity ...`), `nil` when it had a value.
        public let missing: String?
        /// The values the field lists.
        public let values: [String]
        /// Whether the field is a `not` form, which fails when the request's value matches.
        public let negated: Bool
        /// The failure in words, as `notes` show it.
        public let message: String
    }

    /// How one rule of a policy fared.
    public struct RuleStep: Sendable, Hashable {
        public enum Outcome: String, Sendable, Hashable {
            case matched
            case notMatched = "not matched"
            /// An ALLOW rule with HTTP-only fields, left out on TCP as Istio leaves it out.
            case skippedOnTCP = "skipped on TCP"
        }

        /// The rule's index in the policy's `rules`.
        public let index: Int
        public let outcome: Outcome
        /// The fields the request failed (a `not matched` rule), every one of them.
        public let failures: [FieldFailure]
        /// The fields that took part in the match (a `matched` rule).
        public let matchedFields: [String]
        /// The HTTP-only fields that TCP traffic could not be checked against: ignored in a DENY,
        /// AUDIT or CUSTOM rule, the reason an ALLOW rule is skipped.
        public let httpOnlyFields: [String]
    }

    /// One policy's evaluation.
    public struct PolicyStep: Sendable, Hashable {
        /// `namespace/name` and kind of the policy.
        public let policy: String
        /// AUTHZ action, or `PeerAuthentication`/`RequestAuthentication` for authn steps.
        public let kind: String
        /// Whether it was a dry run.
        public let dryRun: Bool
        /// What happened, one entry per rule (`rules[0]: matched on ...`).
        public let notes: [String]
        /// What became of an AuthorizationPolicy; `nil` for the authentication steps.
        public let outcome: Outcome?
        /// The index of the rule that matched, if one did.
        public let matchedRule: Int?
        /// Each rule evaluated, in order, up to the one that matched.
        public let rules: [RuleStep]

        public init(
            policy: String, kind: String, dryRun: Bool, notes: [String], outcome: Outcome? = nil,
            matchedRule: Int? = nil, rules: [RuleStep] = []
        ) {
            self.policy = policy
            self.kind = kind
            self.dryRun = dryRun
            self.notes = notes
            self.outcome = outcome
            self.matchedRule = matchedRule
            self.rules = rules
        }
    }

    /// The steps in evaluation order.
    public let steps: [PolicyStep]

    /// A JSON-compatible rendering: each step's `policy`, `kind`, `dry_run` and `notes` (the words),
    /// and for AuthorizationPolicies `outcome`, `matched_rule` and `rules`, each rule with its
    /// `index`, `outcome`, and its `failed` fields or `matched_fields`.
    public var jsonObject: [[String: Any]] {
        steps.map { step in
            var object: [String: Any] = ["policy": step.policy, "kind": step.kind, "dry_run": step.dryRun, "notes": step.notes]
            guard let outcome = step.outcome else { return object }
            object["outcome"] = outcome.rawValue
            object["matched_rule"] = step.matchedRule.map { $0 as Any } ?? NSNull()
            if outcome == .matched || outcome == .notMatched { object["rules"] = step.rules.map(Self.json) }
            return object
        }
    }

    private static func json(_ rule: RuleStep) -> [String: Any] {
        var object: [String: Any] = ["index": rule.index, "outcome": rule.outcome.rawValue]
        switch rule.outcome {
        case .matched: object["matched_fields"] = rule.matchedFields
        case .notMatched: object["failed"] = rule.failures.map(json)
        case .skippedOnTCP: break
        }
        if !rule.httpOnlyFields.isEmpty { object["http_only_fields"] = rule.httpOnlyFields }
        return object
    }

    private static func json(_ failure: FieldFailure) -> [String: Any] {
        var object: [String: Any] = [
            "field": failure.field, "values": failure.values, "negated": failure.negated,
            "value": failure.value.map { $0 as Any } ?? NSNull(), "message": failure.message,
        ]
        if let key = failure.key { object["key"] = key }
        if let missing = failure.missing { object["missing"] = missing }
        return object
    }

    /// Lines for a terminal.
    public var lines: [String] {
        steps.flatMap { step in
            ["\(step.kind) \(step.policy)\(step.dryRun ? " (dry run)" : "")"] + step.notes.map { "  \($0)" }
        }
    }
}
