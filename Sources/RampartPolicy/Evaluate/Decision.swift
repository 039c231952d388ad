import Foundation

/// The outcome of evaluating one request: a value, never a thrown error.
public struct Decision: Sendable, Hashable {
    /// Allow or deny.
    public enum Verdict: String, Sendable, Hashable {
        case allow
        case deny
    }

    /// Why the decision came out as it did; `reason` renders it for people.
    public enum Cause: Sendable, Hashable {
        case noAllowPolicy
        case allowMatched
        case noAllowMatched
        case denyMatched
        case customDenied
        case customUnanswered
        case customAllowed
        /// A CUSTOM rule matched where the workload's CUSTOM policies name several providers
        /// (listed): Istio allows one per workload and makes every CUSTOM rule a denial.
        case customProvidersConflict([String])
        case plaintextUnderStrict
        /// The path is one Istio's default path normalization refuses (`PathNormalizer.rejects`).
        case invalidPath
        /// The path does not start with `/` (`ResolvedWorkload.refusesTarget`): Envoy's connection
        /// manager serves relative paths only, and answers 404 before any filter.
        case relativePath
        /// The request is one Istio's proxies refuse before any policy (`AuthzRequest.malformation`).
        case malformedRequest(String)
        case jwtInvalid(String?)
        case jwtUnknownIssuer(String?)
        /// The keys of the token's issuer cannot be had; it names where they come from.
        case jwtKeysUnavailable(String)
        case jwtAudienceNotAllowed
        case jwtRequired
    }

    /// What a dry-run policy would have done.
    public struct DryRunResult: Sendable, Hashable {
        /// The policy (`namespace/name`).
        public let policy: String
        /// Its action (ALLOW or DENY).
        public let action: AuthorizationPolicy.Action
        /// The first matching rule, if any.
        public let rule: Int?
        /// What enforcing this policy alone would have decided.
        public let wouldBe: Verdict
    }

    /// Allow or deny.
    public let decision: Verdict
    /// 200, 400 (a malformed request, or a path the normalization refuses), 401 or 403.
    public let status: Int
    /// Where the deciding policy's name is read from: written out, or the program that decided
    /// and the policy's index in it. The fast path keeps the program, whose object it has just
    /// read, rather than the name, whose storage it has not: the name is read only when asked for.
    enum DecidingPolicy: Sendable {
        case name(String)
        case program(WorkloadProgram, Int32)
    }

    /// The deciding policy, if one decided.
    let deciding: DecidingPolicy?

    /// The deciding policy (`namespace/name`), if one decided.
    public var policy: String? {
        switch deciding {
        case nil: return nil
        case .name(let name)?: return name
        case .program(let program, let index)?: return program.policies[Int(index)].name
        }
    }
    /// The matching rule of that policy.
    public let rule: Int?
    /// The effective mTLS mode for the destination port.
    public let mtlsMode: MTLSMode
    /// Why.
    public let cause: Cause
    /// Results of dry-run policies, which are never enforced.
    public let dryRun: [DryRunResult]
    /// Header changes request authentication asks for, on allowed HTTP requests.
    public let headerEdits: [HeaderEdit]

    public static func == (left: Decision, right: Decision) -> Bool {
        left.decision == right.decision && left.status == right.status && left.policy == right.policy
            && left.rule == right.rule && left.mtlsMode == right.mtlsMode && left.cause == right.cause
            && left.dryRun == right.dryRun && left.headerEdits == right.headerEdits
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(decision)
        hasher.combine(status)
        hasher.combine(policy)
        hasher.combine(rule)
        hasher.combine(mtlsMode)
        hasher.combine(cause)
        hasher.combine(dryRun)
        hasher.combine(headerEdits)
    }

    /// A human explanation of the decision.
    public var reason: String {
        let by = policy.map { " \($0)" + (rule.map { " rule \($0)" } ?? "") } ?? ""
        return cause.message(by: by)
    }

    /// Renders the decision for the CLI: decision, status, policy, rule, mtls_mode, reason.
    public func jsonObject(trace: ExplainTrace? = nil) -> [String: Any] {
        var object: [String: Any] = [
            "decision": decision.rawValue, "status": status, "mtls_mode": mtlsMode.rawValue, "reason": reason,
            "policy": policy.map { $0 as Any } ?? NSNull(), "rule": rule.map { $0 as Any } ?? NSNull(),
        ]
        if !dryRun.isEmpty {
            object["dry_run"] = dryRun.map {
                ["policy": $0.policy, "action": $0.action.rawValue, "rule": $0.rule.map { $0 as Any } ?? NSNull(),
                 "would_be": $0.wouldBe.rawValue] as [String: Any]
            }
        }
        if let trace { object["explain"] = trace.jsonObject }
        return object
    }
}

extension Decision.Cause {
    /// The cause as people read it; `by` names the deciding policy and rule (` ns/name rule 0`),
    /// empty when none decided.
    public func message(by: String = "") -> String {
        switch self {
        case .noAllowPolicy: return "allowed: no DENY policy matched and no ALLOW policy applies to the workload"
        case .allowMatched: return "allowed by ALLOW policy\(by)"
        case .noAllowMatched: return "denied: ALLOW policies apply to the workload but none matched"
        case .denyMatched: return "denied by DENY policy\(by)"
        case .customDenied: return "denied by the ext-authz provider of CUSTOM policy\(by)"
        case .customUnanswered: return "denied: CUSTOM policy\(by) matched but the ext-authz provider gave no answer"
        case .customAllowed: return "allowed: the ext-authz provider of CUSTOM policy\(by) allowed it"
        case .customProvidersConflict(let providers):
            return "denied: CUSTOM policy\(by) matched, and the workload's CUSTOM policies name \(providers.count) providers"
                + " (\(providers.joined(separator: ", "))); Istio takes one per workload and makes every CUSTOM rule deny"
        case .plaintextUnderStrict: return "denied: plaintext connection to a port whose PeerAuthentication is STRICT"
        case .invalidPath:
            return "400: the path holds an escaped NUL (%00), which Istio's default path normalization refuses before"
                + " any policy is evaluated"
        case .relativePath:
            return "404: the path does not start with /, and Envoy's connection manager answers such a request 404"
                + " before any policy is evaluated"
        case .malformedRequest(let why):
            return "400: \(why), and Istio's proxies refuse such a request before any policy is evaluated"
        case .jwtInvalid(let why): return "401: the JWT failed verification" + (why.map { " (\($0))" } ?? "")
        case .jwtUnknownIssuer(let issuer):
            return "401: no RequestAuthentication rule for this workload accepts issuer \(issuer ?? "<none>")"
        case .jwtKeysUnavailable(let source):
            return "401: no usable keys for the token's issuer from \(source)"
        case .jwtAudienceNotAllowed: return "403: the JWT's audience is not one the issuer's rule accepts"
        case .jwtRequired: return "401: a JWT is required and none was found"
        }
    }
}
