import ArgumentParser
import Foundation
import RampartAuthn
import RampartIdentity
import RampartPolicy

/// `rampart authz`: ask the policy engine about a request.
struct Authz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authz",
        abstract: "Evaluate requests against mesh policies with Istio's semantics.",
        subcommands: [AuthzCheck.self]
    )
}

/// `rampart authz check`: one request, one decision, and optionally why.
struct AuthzCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Decide one request against AuthorizationPolicy, PeerAuthentication and RequestAuthentication resources.",
        discussion: """
            The request file is JSON or YAML: protocol, source {principal, namespace, ip, remote_ip, mtls}, destination \
            {namespace, labels, port, ip}, method, host, path, headers, sni, ext_authz, jwt {present, valid, claims, \
            request_principal}. Without a jwt block, a real token in a location the workload's RequestAuthentication \
            reads (headers {authorization: "Bearer eyJ..."}, ?access_token= in the path, a cookie) is verified with the \
            rule's keys (inline jwks, jwksUri, or OIDC discovery). The exit status is 0 whatever the decision; it is \
            non-zero only when an input is bad.
            """
    )

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Policy YAML files or folders, or - for standard input.", valueName: "path"))
    var policies: [String]

    @Option(help: ArgumentHelp("The request, as JSON or YAML, or - for standard input.", valueName: "file"))
    var request: String

    @Flag(help: "Add every policy considered and, for each, the rule and field that matched or failed.")
    var explain = false

    @Flag(help: "Print one JSON object: decision, status, policy, rule, mtls_mode, reason (and explain).")
    var json = false

    @Option(help: "The mesh's root namespace, whose policies apply mesh-wide.")
    var rootNamespace: String = "istio-system"

    @Option(help: "The mesh's trust domain; cluster.local in a policy's principals stands for it and its aliases.")
    var trustDomain: String = "cluster.local"

    @Option(help: ArgumentHelp("Another trust domain the mesh accepts as its own (repeatable), as when migrating.", valueName: "domain"))
    var trustDomainAlias: [String] = []

    @Option(help: ArgumentHelp("A YAML file stating JWKS fetch outcomes instead of fetching: {unreachable: [uri], latency_ms: {uri: ms}}.", valueName: "file"))
    var jwksEnv: String?

    @Option(help: ArgumentHelp("A PEM file of CA certificates trusted beside the system's roots when fetching a JWKS over https (a private CA's key server).", valueName: "file"))
    var jwksExtraRootCA: String?

    func validate() throws {
        // The option takes one file; a second would silently replace the first.
        let given = CommandLine.arguments.filter { $0 == "--request" || $0.hasPrefix("--request=") }.count
        if given > 1 { throw ValidationError("--request is given \(given) times: give one request file") }
        _ = try jwksExtraRootCA.map(ExtraRootCertificates.option)
        try OptionValues.checkNamespace(rootNamespace, option: "--root-namespace")
        guard !policies.isEmpty else { throw ValidationError("--policies needs at least one YAML file or folder") }
        if policies.contains(PolicyLoader.standardInput) && request == PolicyLoader.standardInput {
            throw ValidationError("standard input can be read once: give the policies or the request as - , not both")
        }
        for (flag, value) in [("--trust-domain", trustDomain)] + trustDomainAlias.map({ ("--trust-domain-alias", $0) }) {
            do {
                _ = try TrustDomain(value)
            } catch {
                throw ValidationError("\(flag) \(value): \(error)")
            }
        }
    }

    func run() async throws {
        let loaded = PolicyLoader.load(paths: policies)
        if loaded.hasErrors {
            let errors = loaded.diagnostics.filter { $0.severity == .error }
            StandardError.write(Data((PolicyEngine.renderHuman(errors) + "\n").utf8))
            throw ValidationError("the policies could not be read (\(errors.count) error\(errors.count == 1 ? "" : "s") above); fix them, then check again")
        }
        // A resource defined twice cannot be in force twice, and which one would be depends on
        // the order the files are read in: refused, as apply refuses it.
        let duplicates = PolicyAnalyzer.duplicates(loaded.resources)
        if !duplicates.isEmpty {
            StandardError.write(Data((PolicyEngine.renderHuman(duplicates) + "\n").utf8))
            throw ValidationError("the policies define a resource more than once (\(duplicates.count) above); keep one definition of each, then check again")
        }
        if loaded.resources.isEmpty {
            StandardError.write(Data((PolicyLoader.nothingFoundWarning(policies) + "\n").utf8))
        }
        let written: AuthzRequest
        do {
            written = try AuthzRequest(file: request)
        } catch {
            throw ValidationError("request \(error.place(PolicyLoader.displayNames([request]))): \(error)")
        }
        // The headers a sidecar sets before any policy reads the request.
        let parsed = written.withProxyHeaders(requestID: UUID().uuidString.lowercased(), trustDomain: trustDomain)
        for (name, value) in written.headers.sorted(by: { $0.key < $1.key })
        where name == "x-forwarded-client-cert" && parsed.headers[name] != value {
            let now = parsed.headers[name].map { "becomes \"\(DiagnosticText.escaped($0))\"" } ?? "is removed (a plaintext request has no client certificate to forward)"
            StandardError.write(Data(
                "warning: request \(PolicyLoader.displayNames([request])): \(name) is set by the proxy before any policy reads it, as Envoy sets it: \"\(DiagnosticText.escaped(value))\" \(now)\n".utf8))
        }
        // Keys come as a proxy would get them: each JWKS URI of the rules that apply to the
        // destination is fetched (see JWKSProbe) when the request carries a token, unless an
        // environment file states the outcomes.
        let fetcher = PublishedJWKSFetcher(base: AsyncHTTPClientFetcher(extraRoots: try jwksExtraRootCA.map(ExtraRootCertificates.option)))
        let environment: JWKSEnvironment
        // What a real token's keys are fetched with: the stated environment over the network, or
        // the probe's own answers (so each URI is fetched once and its failure keeps its reason).
        let tokenFetcher: any HTTPFetcher
        if let jwksEnv {
            do {
                environment = try JWKSEnvironment.from(file: jwksEnv)
            } catch {
                throw ValidationError("--jwks-env \(error.place(jwksEnv)): \(error)")
            }
            tokenFetcher = JWKSEnvironmentFetcher(environment: environment, base: fetcher, statedBy: "--jwks-env \(jwksEnv)")
        } else {
            let rules = Self.rulesToProbe(parsed, loaded: loaded, rootNamespace: rootNamespace)
            let probed = await JWKSProbe.probe(rules: rules, fetcher: fetcher)
            environment = probed.environment
            tokenFetcher = probed.fetcher
        }
        let engine = PolicyEngine(loaded: loaded, options: SnapshotOptions(
                rootNamespace: rootNamespace, jwks: environment,
                trustDomains: TrustDomainBundle(trustDomain: trustDomain, aliases: trustDomainAlias)))
        // Istio's webhook would refuse these resources; they are evaluated as written, and said.
        let refused = engine.diagnostics.filter { $0.severity == .error }
        if !refused.isEmpty {
            StandardError.write(Data((
                "warning: validation refuses what follows, as Istio's webhook would (see 'rampart analyze'); "
                + "the resources are evaluated as written:\n" + PolicyEngine.renderHuman(refused) + "\n").utf8))
        }
        // Competing PeerAuthentications where the destination's mode is decided: which applies
        // depends on creation times the files may not give.
        let competing = PolicyAnalyzer.peerAuthenticationConflicts(loaded.resources).filter { diagnostic in
            [parsed.destination.namespace, rootNamespace].contains(diagnostic.resource?.namespace ?? "")
        }
        if !competing.isEmpty {
            StandardError.write(Data((
                "warning: PeerAuthentications compete where this request's mTLS mode is decided; the one created first "
                + "applies (by metadata.creationTimestamp; without one, by name), as in a config store, where that is "
                + "the one applied first:\n" + PolicyEngine.renderHuman(competing) + "\n").utf8))
        }
        for warning in Self.requestWarnings(parsed, engine.snapshot) + Self.namespaceWarnings(parsed, loaded, rootNamespace: rootNamespace) {
            StandardError.write(Data("warning: request \(PolicyLoader.displayNames([request])): \(warning)\n".utf8))
        }
        let authn = await Self.authenticate(parsed, snapshot: engine.snapshot, fetcher: tokenFetcher)
        let checked = authn.map { parsed.with(jwt: $0.outcome) } ?? parsed
        let result = Self.render(checked, authn: authn, snapshot: engine.snapshot, explain: explain)
        if json {
            print(try JSONText.render(result))
            return
        }
        print(Self.human(result))
    }

    /// The JWT rules whose keys the decision can depend on: those that apply to the destination,
    /// when the request has a token (an abstract `jwt:` block that is present, or a real token
    /// where one of them looks); none otherwise, so a slow key server does not hold up a request
    /// without a token.
    static func rulesToProbe(_ request: AuthzRequest, loaded: LoadResult, rootNamespace: String) -> [JWTRule] {
        let authentications = loaded.resources.filter {
            if case .requestAuthentication = $0 { return true }
            return false
        }
        let providers = PolicySnapshot(resources: authentications, options: SnapshotOptions(rootNamespace: rootNamespace))
            .jwtProviders(namespace: request.destination.namespace, labels: request.destination.labels)
        if let jwt = request.jwt { return jwt.present ? providers.map(\.rule) : [] }
        return TokenExtractor.extract(from: request, providers: providers).isEmpty ? [] : providers.map(\.rule)
    }

    /// Verifies a real token when the request has no abstract `jwt:` block (which has precedence)
    /// and carries one in a location the workload's RequestAuthentication reads; `nil` otherwise.
    static func authenticate(
        _ request: AuthzRequest, snapshot: PolicySnapshot, fetcher: any HTTPFetcher
    ) async -> RequestAuthnResult? {
        guard request.jwt == nil else { return nil }
        let providers = snapshot.jwtProviders(namespace: request.destination.namespace, labels: request.destination.labels)
        let authenticator = RequestAuthenticator(fetcher: fetcher)
        let result = await authenticator.authenticate(request, providers: providers)
        return result.tokenPresent ? result : nil
    }

    /// Policies written for a namespace one or two letters from the destination's: probably meant
    /// for it, and not applying because of the typo.
    static func namespaceWarnings(_ request: AuthzRequest, _ loaded: LoadResult, rootNamespace: String) -> [String] {
        let destination = request.destination.namespace
        var near: [String: [String]] = [:]
        for resource in loaded.resources {
            let namespace = resource.id.namespace
            guard namespace != destination, namespace != rootNamespace,
                EditDistance.between(namespace, destination) <= 2
            else { continue }
            near[namespace, default: []].append("\(resource.id.kind.rawValue) \(resource.id.qualifiedName)")
        }
        return near.keys.sorted().map { namespace in
            "\(near[namespace]!.joined(separator: ", ")) \(near[namespace]!.count == 1 ? "is" : "are") in namespace \(namespace), not \(destination), so \(near[namespace]!.count == 1 ? "it does" : "they do") not apply to this request; if \(destination) was meant, correct metadata.namespace"
        }
    }

    /// What in a request file is probably not what its author meant.
    static func requestWarnings(_ request: AuthzRequest, _ snapshot: PolicySnapshot) -> [String] {
        var warnings: [String] = []
        let providers = snapshot.jwtProviders(namespace: request.destination.namespace, labels: request.destination.labels)
        let bearer = request.headers["authorization"].map { $0.lowercased().hasPrefix("bearer ") } ?? false
        if request.jwt != nil && bearer {
            warnings.append(
                "the request has both a jwt: block and a token in its authorization header: the jwt: block is used, and the token is not checked (remove the block to check the token)")
        } else if request.jwt == nil, !providers.isEmpty, TokenExtractor.extract(from: request, providers: providers).isEmpty {
            // A token the rules do not read: a prefix in another case, or a cookie no rule lists.
            for provider in providers {
                for case .header(let name, let prefix) in provider.locations where !prefix.isEmpty {
                    guard let value = request.headers[name], !value.hasPrefix(prefix),
                        value.lowercased().hasPrefix(prefix.lowercased())
                    else { continue }
                    warnings.append(
                        "header \(name) starts with \"\(value.prefix(prefix.count))\", but jwtRules[\(provider.ruleIndex)] of \(provider.policy) reads the prefix \"\(prefix)\", compared case-sensitively as Envoy compares it: the token is not read, and the request counts as one without a token")
                }
            }
            let readsCookies = providers.contains { $0.locations.contains { if case .cookie = $0 { return true } else { return false } } }
            if !readsCookies, let cookie = request.headers["cookie"], cookie.contains("eyJ") {
                warnings.append(
                    "the cookie header seems to hold a JWT, but no jwtRule for this workload lists fromCookies: the token is not read, and the request counts as one without a token")
            }
        } else if providers.isEmpty && (bearer || request.jwt?.present == true) {
            let destination =
                "\(request.destination.namespace) \(request.destination.labels.isEmpty ? "(no labels)" : WorkloadSelector.text(request.destination.labels))"
            let applying = snapshot.requestAuthenticationCount(
                namespace: request.destination.namespace, labels: request.destination.labels)
            let why =
                applying == 0
                ? "no RequestAuthentication applies to \(destination)"
                : "the RequestAuthentication\(applying == 1 ? "" : "s") applying to \(destination) \(applying == 1 ? "has" : "have") no jwtRules"
            warnings.append(
                "the request carries a token, but \(why): the token is not checked, and the request has no request principal")
        }
        if request.source.principal != nil, request.source.mtls == false {
            warnings.append(
                "source.principal is ignored because source.mtls is false: a plaintext connection has no peer"
                    + " identity (remove mtls: false to send it over mTLS)")
        }
        let peer = snapshot.peerModes(for: request.destination)
        if request.destination.port == nil, !peer.portModes.isEmpty {
            let ports = peer.portModes.keys.sorted().map(String.init).joined(separator: ", ")
            warnings.append(
                "destination.port is not given, so the portLevelMtls of \(peer.sources.last ?? "-") (ports \(ports))"
                    + " is not considered (add destination.port)")
        }
        return warnings
    }

    /// The decision object: `decision`, `status`, `policy`, `rule`, `mtls_mode`, `reason`, and
    /// `header_edits` when request authentication asks for any.
    static func render(_ request: AuthzRequest, authn: RequestAuthnResult?, snapshot: PolicySnapshot, explain: Bool) -> [String: Any] {
        var (decision, object) = PolicyEngine.check(request, snapshot: snapshot, explain: explain)
        if case .jwtAudienceNotAllowed = decision.cause, let failure = authn?.failure {
            object["reason"] = "\(decision.reason) (\(failure.reason))"
        }
        // Edits apply to allowed requests; a verified real token's edits name the header it came in and carry its payload.
        let edits = decision.decision != .allow ? [] : authn.map { $0.failure == nil ? $0.headerEdits : [] } ?? decision.headerEdits
        if !edits.isEmpty {
            let payload = request.jwt?.raw.map(Self.payloadSegment)
            object["header_edits"] = edits.map { edit -> [String: Any] in
                switch edit {
                case .remove(let name): return ["op": "remove", "header": name]
                case .setPayload(let name): return ["op": "set", "header": name, "value": payload.map { $0 as Any } ?? NSNull()]
                case .set(let name, let value): return ["op": "set", "header": name, "value": value]
                case .removeQueryParameter(let name): return ["op": "remove", "query_parameter": name]
                }
            }
        }
        return object
    }

    /// The payload part of a compact JWS (what `outputPayloadToHeader` forwards).
    static func payloadSegment(_ token: String) -> String {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 ? String(parts[1]) : ""
    }

    /// A short human rendering of the decision object.
    static func human(_ result: [String: Any]) -> String {
        func text(_ value: Any?) -> String {
            switch value {
            case nil, is NSNull: return "-"
            case let value?: return "\(value)"
            }
        }
        var lines = [
            "decision:  \(text(result["decision"])) (\(text(result["status"])))",
            "policy:    \(text(result["policy"]))\(result["rule"] is NSNull ? "" : ", rule \(text(result["rule"]))")",
            "mTLS mode: \(text(result["mtls_mode"]))"
                + ((result["mtls_policy"] as? String).map { " (set by PeerAuthentication \($0))" } ?? ""),
            "reason:    \(text(result["reason"]))",
        ]
        for edit in result["header_edits"] as? [[String: Any]] ?? [] {
            if let parameter = edit["query_parameter"] {
                lines.append("query:     \(text(edit["op"])) \(text(parameter))")
                continue
            }
            lines.append("header:    \(text(edit["op"])) \(text(edit["header"]))\(edit["value"].map { " = \(text($0))" } ?? "")")
        }
        if result["explain"] == nil, result["policy"] is NSNull, (result["reason"] as? String)?.hasPrefix("denied: no rule of") == true {
            lines.append("hint:      --explain shows which field of each rule failed")
        }
        if let dryRun = result["dry_run"] as? [[String: Any]] {
            for entry in dryRun {
                // As Istio's shadow result: the policy enforced on its own, whatever the others decide.
                let matched = (entry["rule"] as? Int).map { "rule \($0) matches" } ?? "no rule matches"
                lines.append(
                    "dry run:   \(text(entry["policy"])) \(text(entry["action"])): \(matched), so enforced on its own it would \(text(entry["would_be"]))")
            }
        }
        if let steps = result["explain"] as? [[String: Any]] {
            lines.append("considered:")
            for step in steps {
                let dryRun = (step["dry_run"] as? Bool) == true ? " (dry run)" : ""
                lines.append("  \(text(step["kind"])) \(text(step["policy"]))\(dryRun)")
                for note in step["notes"] as? [String] ?? [] { lines.append("    \(note)") }
            }
        }
        return lines.joined(separator: "\n")
    }
}
