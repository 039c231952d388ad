/// A record of every policy considered for a request and how each of its rules fared.
public struct ExplainTrace: Sendable, Hashable {
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
    }

    /// The steps in evaluation order.
    public let steps: [PolicyStep]

    /// A JSON-compatible rendering.
    public var jsonObject: [[String: Any]] {
        steps.map { ["policy": $0.policy, "kind": $0.kind, "dry_run": $0.dryRun, "notes": $0.notes] }
    }

    /// Lines for a terminal.
    public var lines: [String] {
        steps.flatMap { step in
            ["\(step.kind) \(step.policy)\(step.dryRun ? " (dry run)" : "")"] + step.notes.map { "  \($0)" }
        }
    }
}
