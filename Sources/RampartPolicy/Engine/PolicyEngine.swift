import Foundation

/// The entry point the CLI calls: load policies, analyze them, and check requests.
public struct PolicyEngine: Sendable {
    /// The compiled snapshot (resources with validation errors are left out).
    public let snapshot: PolicySnapshot
    /// Everything found while loading and validating.
    public let diagnostics: [Diagnostic]

    /// Loads files and folders, validates them and compiles them.
    ///
    /// Resources that failed to decode are always left out. With `excludeInvalid` (what a control
    /// plane should use, like Istio's webhook) resources with validation errors are left out too;
    /// without it (the default, for `authz check`) they are evaluated as written and the errors are
    /// only reported.
    public init(paths: [String], options: SnapshotOptions = SnapshotOptions(), excludeInvalid: Bool = false) {
        self.init(loaded: PolicyLoader.load(paths: paths), options: options, excludeInvalid: excludeInvalid)
    }

    /// Loads YAML text, validates it and compiles it (see `init(paths:options:excludeInvalid:)`).
    public init(
        yaml: String, file: String = "<input>", options: SnapshotOptions = SnapshotOptions(),
        excludeInvalid: Bool = false
    ) {
        self.init(loaded: PolicyLoader.load(yaml: yaml, file: file), options: options, excludeInvalid: excludeInvalid)
    }

    /// Validates and compiles resources already loaded (the CLI loads first, to refuse schema errors).
    public init(loaded: LoadResult, options: SnapshotOptions = SnapshotOptions(), excludeInvalid: Bool = false) {
        let validation = PolicyAnalyzer.validate(loaded.resources)
        let rejected = excludeInvalid ? Set(validation.filter { $0.severity == .error }.compactMap(\.resource)) : []
        snapshot = PolicySnapshot(resources: loaded.resources.filter { !rejected.contains($0.id) }, options: options)
        diagnostics = loaded.diagnostics + validation
    }

    /// Evaluates a request and renders `decision`, `status`, `policy`, `rule`, `mtls_mode`, `reason`
    /// (and `explain` when asked) as a JSON-compatible dictionary.
    public func check(_ request: AuthzRequest, explain: Bool = false) -> [String: Any] {
        Self.check(request, snapshot: snapshot, explain: explain).object
    }

    /// Decides a request on `snapshot` and renders it (see `check(_:explain:)`), returning the
    /// decision too, for callers that add to the rendering.
    public static func check(_ request: AuthzRequest, snapshot: PolicySnapshot, explain: Bool) -> (
        decision: Decision, object: [String: Any]
    ) {
        var object: [String: Any]
        let decision: Decision
        if explain {
            let (explained, trace) = snapshot.explain(request)
            decision = explained
            object = explained.jsonObject(trace: trace)
        } else {
            decision = snapshot.evaluate(request)
            object = decision.jsonObject()
        }
        describePeer(&object, decision, snapshot, request)
        if case .noAllowMatched = decision.cause {
            object["reason"] = noAllowMatchedReason(request, snapshot)
        }
        // A request refused by request authentication names the RequestAuthentications whose
        // rules refused it, as mtls_policy names the PeerAuthentication.
        if decision.status == 401 || decision.cause == .jwtAudienceNotAllowed {
            let providers = snapshot.jwtProviders(namespace: request.destination.namespace, labels: request.destination.labels)
            let claimed = providers.filter { $0.accepts(issuer: request.jwt?.issuer) }
            let names = Array(Set((claimed.isEmpty ? providers : claimed).map(\.policy))).sorted()
            object["request_authentication"] = names.isEmpty ? NSNull() : names.joined(separator: ", ") as Any
        }
        if case .jwtAudienceNotAllowed = decision.cause, let jwt = request.jwt, jwt.failure == nil {
            object["reason"] = audienceReason(jwt, request, snapshot)
        }
        // An allowed request that a dry-run policy would deny if it were enforced: said beside the
        // enforced reason, since "no DENY policy matched" does not count the dry-run ones.
        let overturned = decision.decision == .allow ? decision.dryRun.filter { $0.wouldBe == .deny } : []
        if !overturned.isEmpty {
            let said = overturned.map { result in
                "\(result.policy) would \(result.wouldBe.rawValue) on its own (\(result.rule.map { "its rule \($0) matches" } ?? "no rule of it matches"))"
            }.joined(separator: ", ")
            object["reason"] = "\(object["reason"] as? String ?? decision.reason); in dry run, \(said)"
        }
        // An allowed request that a CUSTOM policy sent to its provider: say so, since the decision
        // names only the ALLOW policy (if any) that let it through.
        if decision.decision == .allow, request.extAuthz == .allow, let (policy, rule) = snapshot.customMatch(request) {
            object["custom_policy"] = policy
            object["reason"] =
                "\(object["reason"] as? String ?? decision.reason); CUSTOM policy \(policy) rule \(rule) matched, and its ext-authz provider allowed the request (ext_authz: allow)"
        }
        return (decision, object)
    }

    /// The reason of a 403 for an abstract token whose audience no rule of its issuer accepts:
    /// the token's audiences and those the rules accept.
    static func audienceReason(_ jwt: JWTOutcome, _ request: AuthzRequest, _ snapshot: PolicySnapshot) -> String {
        let providers = snapshot.jwtProviders(namespace: request.destination.namespace, labels: request.destination.labels)
            .filter { $0.accepts(issuer: jwt.issuer) }
        var audiences: [String] = []
        switch jwt.claims?["aud"] {
        case .string(let one)?: audiences = [one]
        case .array(let many)?: audiences = many.compactMap { if case .string(let text) = $0 { return text } else { return nil } }
        default: break
        }
        let has = audiences.isEmpty ? "no aud claim" : "aud [\(audiences.joined(separator: ", "))]"
        let rules = providers.map { "\($0.policy) jwtRules[\($0.ruleIndex)]" }.joined(separator: ", ")
        let accepted = Array(Set(providers.flatMap(\.rule.audiences))).sorted().joined(separator: ", ")
        return "403: the JWT's audience is not one the issuer's rule accepts: the token has \(has), and \(rules) accept\(providers.count == 1 ? "s" : "") only [\(accepted)]"
    }

    /// The reason of a default deny, naming the ALLOW policies that were tried (and, on TCP, the
    /// rules dropped because they hold HTTP-only fields), so the question "which policy should
    /// have let this in?" has its answer without `--explain`.
    static func noAllowMatchedReason(_ request: AuthzRequest, _ snapshot: PolicySnapshot) -> String {
        let allow = snapshot.workload(namespace: request.destination.namespace, labels: request.destination.labels).resolved.allow
        let shown = 5
        var names = allow.prefix(shown).map(\.name).joined(separator: ", ")
        if allow.count > shown { names += " and \(allow.count - shown) more" }
        var reason = "denied: no rule of the ALLOW policies that apply to the workload (\(names)) matched"
        if allow.allSatisfy({ $0.rules.isEmpty }) {
            return "denied: the ALLOW policies that apply to the workload (\(names)) have no rules, so they allow nothing"
        }
        if request.transport == .tcp {
            let dropped = allow.reduce(0) { $0 + $1.rules.count - $1.tcpRules.count }
            if dropped > 0 {
                reason += "; on TCP, \(dropped) of their rules \(dropped == 1 ? "is" : "are") left out for holding HTTP-only fields"
            }
        }
        return reason
    }

    /// Adds `mtls_policy`, the PeerAuthentication that set the destination port's mTLS mode
    /// (`namespace/name`, or null when none did and the mode is PERMISSIVE by default), and names
    /// it and the port in the reason of a plaintext request refused by STRICT.
    public static func describePeer(
        _ object: inout [String: Any], _ decision: Decision, _ snapshot: PolicySnapshot, _ request: AuthzRequest
    ) {
        let port = request.destination.port
        let setter = snapshot.peerModes(for: request.destination).setBy(port: port)
        object["mtls_policy"] = setter.map { $0 as Any } ?? NSNull()
        if decision.cause == .plaintextUnderStrict {
            let portText = port.map { "port \($0)" } ?? "the port"
            object["reason"] =
                "denied: plaintext connection to \(portText), which PeerAuthentication \(setter ?? "-") makes STRICT;"
                + " a sidecar refuses it in the TLS handshake, before any HTTP response (fix: send it with mTLS"
                + " from a workload in the mesh, or set the port PERMISSIVE with portLevelMtls)"
        }
    }

    /// Evaluates a request file (JSON or YAML) and renders the decision.
    public func check(requestFile: String, explain: Bool = false) throws(RequestDecodingError) -> [String: Any] {
        check(try AuthzRequest(file: requestFile), explain: explain)
    }

    /// Loads, validates and analyzes files and folders; `workloads` enables the selector check.
    public static func analyze(
        paths: [String], workloads: [Workload]? = nil, rootNamespace: String = "istio-system"
    ) -> [Diagnostic] {
        let loaded = PolicyLoader.load(paths: paths)
        return inReadingOrder(
            withoutFollowOns(
                loaded.diagnostics,
                PolicyAnalyzer.analyze(
                    loaded.resources, reading: loaded.diagnostics, workloads: workloads, rootNamespace: rootNamespace)))
    }

    /// The reading errors and the findings of validation, without the findings that only restate
    /// a reading error: a source, operation, condition or selector found empty because the field
    /// it held was misspelt or of the wrong type (that field's error says what to fix).
    public static func withoutFollowOns(_ reading: [Diagnostic], _ findings: [Diagnostic]) -> [Diagnostic] {
        // Every field that holds a misspelt or wrongly typed field, with its file and resource.
        struct Holder: Hashable {
            let file: String
            let resource: ResourceID?
            let field: String
        }
        var holders: Set<Holder> = []
        // Every value of the wrong type: what is found at or below it was found in the default
        // that stood in for it (a list item that is not a mapping read as an empty entry).
        var mistyped: Set<Holder> = []
        // Every JWT rule whose issuer was written empty: that error already asks for the issuer.
        var emptyIssuers: Set<Holder> = []
        for cause in reading {
            if cause.code == .wrongType { mistyped.insert(Holder(file: cause.file, resource: cause.resource, field: cause.field)) }
            if cause.code == .badJWTRule && cause.field.hasSuffix(".issuer") {
                emptyIssuers.insert(Holder(file: cause.file, resource: cause.resource, field: String(cause.field.dropLast(".issuer".count))))
            }
        }
        for cause in reading where cause.code == .wrongType || cause.code == .unknownField {
            let field = cause.field.utf8
            for index in field.indices where index != field.startIndex && (field[index] == 0x2E || field[index] == 0x5B) {
                // "." or "[": the part before is a field that holds the one at fault.
                holders.insert(Holder(file: cause.file, resource: cause.resource, field: String(cause.field[..<index])))
            }
        }
        // The resource without metadata has no name either: one finding says both.
        var unnamed: Set<Holder> = []
        for cause in reading + findings where cause.code == .badMetadata && cause.field == "metadata" {
            unnamed.insert(Holder(file: cause.file, resource: cause.resource, field: "metadata"))
        }
        guard !holders.isEmpty || !unnamed.isEmpty || !mistyped.isEmpty || !emptyIssuers.isEmpty else { return reading + findings }
        // Found empty because the field it held was misspelt or mistyped.
        let emptiness: Set<DiagnosticCode> = [.emptyClause, .emptySelector, .badCondition]
        // Found missing beside a misspelt key: the value written under that key is the one missing.
        let missing: Set<DiagnosticCode> = [.missingValue, .badTargetRef, .badAction]
        func followsOn(_ finding: Diagnostic) -> Bool {
            let holder = Holder(file: finding.file, resource: finding.resource, field: finding.field)
            if finding.code == .badJWTRule && emptyIssuers.contains(holder) { return true }
            if finding.code != .wrongType && !mistyped.isEmpty {
                // The field itself, or any field it holds.
                let field = finding.field.utf8
                if mistyped.contains(holder) { return true }
                for index in field.indices where index != field.startIndex && (field[index] == 0x2E || field[index] == 0x5B) {
                    let holding = Holder(file: finding.file, resource: finding.resource, field: String(finding.field[..<index]))
                    if mistyped.contains(holding) { return true }
                }
            }
            if emptiness.contains(finding.code) && holders.contains(holder) { return true }
            if finding.code == .badMetadata && finding.field == "metadata.name"
                && unnamed.contains(Holder(file: finding.file, resource: finding.resource, field: "metadata"))
            {
                return true
            }
            guard missing.contains(finding.code), let dot = finding.field.lastIndex(of: ".") else { return false }
            return holders.contains(Holder(file: finding.file, resource: finding.resource, field: String(finding.field[..<dot])))
        }
        return reading.filter { !followsOn($0) } + findings.filter { !followsOn($0) }
    }

    /// Diagnostics file by file, in the order the files were read, and by line within a file
    /// (findings on one line keep the order they were made in).
    public static func inReadingOrder(_ diagnostics: [Diagnostic]) -> [Diagnostic] {
        var files: [String: Int] = [:]
        for diagnostic in diagnostics where files[diagnostic.file] == nil { files[diagnostic.file] = files.count }
        return diagnostics.enumerated().sorted { a, b in
            let (fileA, fileB) = (files[a.element.file] ?? 0, files[b.element.file] ?? 0)
            if fileA != fileB { return fileA < fileB }
            if a.element.line != b.element.line { return a.element.line < b.element.line }
            return a.offset < b.offset
        }.map(\.element)
    }

    /// Renders diagnostics one per line: `file:line: severity CODE: resource field: message (fix: ...)`.
    public static func renderHuman(_ diagnostics: [Diagnostic]) -> String {
        diagnostics.map(\.description).joined(separator: "\n")
    }

    /// Renders diagnostics as a JSON-compatible array.
    public static func renderJSON(_ diagnostics: [Diagnostic]) -> [[String: Any]] {
        diagnostics.map(\.jsonObject)
    }
}
