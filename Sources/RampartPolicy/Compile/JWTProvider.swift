/// One JWT rule as it applies to a workload: everything RampartAuthn needs to find and verify a token,
/// and everything policy needs to decide what the verified token grants.
public struct JWTProvider: Sendable, Hashable {
    /// Where a token may be found.
    public enum TokenLocation: Sendable, Hashable {
        /// A header, with the prefix to strip (`Authorization`, `Bearer `).
        case header(name: String, prefix: String)
        /// A query parameter.
        case queryParameter(String)
        /// A cookie.
        case cookie(String)
    }

    /// The provider's fields, held by reference: a provider is copied into every authentication
    /// outcome, and one reference costs less to copy than its dozen strings and collections.
    private let storage: Storage

    /// The RequestAuthentication it came from (`namespace/name`).
    public var policy: String { storage.policy }
    /// The index in `jwtRules`.
    public var ruleIndex: Int { storage.ruleIndex }
    /// The rule as written.
    public var rule: JWTRule { storage.rule }
    /// The token locations, Istio's defaults when the rule lists none.
    public var locations: [TokenLocation] { storage.locations }
    /// Claims whose string value is split on spaces (`scope`, `permission` and the rule's own).
    public var spaceDelimitedClaims: Set<String> { storage.spaceDelimitedClaims }
    /// Whether the issuer's keys can be used: an inline JWKS that holds keys, or a `jwksUri` (or,
    /// without one, an OIDC discovery URL) the environment reaches in time.
    public var keysAvailable: Bool { storage.keysProblem == nil }
    /// Why the issuer's keys cannot be used, when they cannot: the fetch's failure or lateness, or
    /// a key set holding no key.
    public var keysProblem: String? { storage.keysProblem }
    /// The header edits that do not depend on the token: removing the token header, setting the payload header.
    var fixedHeaderEdits: [HeaderEdit] { storage.fixedHeaderEdits }

    /// Istio's default JWKS fetch timeout.
    public static let defaultTimeoutMilliseconds = 5000.0

    private final class Storage: Sendable {
        let policy: String
        let ruleIndex: Int
        let rule: JWTRule
        let locations: [TokenLocation]
        let spaceDelimitedClaims: Set<String>
        let keysProblem: String?
        let fixedHeaderEdits: [HeaderEdit]
        let outputHeaders: [String]

        init(
            policy: String, ruleIndex: Int, rule: JWTRule, locations: [TokenLocation], spaceDelimitedClaims: Set<String>,
            keysProblem: String?, fixedHeaderEdits: [HeaderEdit]
        ) {
            self.policy = policy
            self.ruleIndex = ruleIndex
            self.rule = rule
            self.locations = locations
            self.spaceDelimitedClaims = spaceDelimitedClaims
            self.keysProblem = keysProblem
            self.fixedHeaderEdits = fixedHeaderEdits
            outputHeaders = ([rule.outputPayloadToHeader] + rule.outputClaimToHeaders.map(\.header))
                .filter { !$0.isEmpty }.map { $0.lowercased() }
        }
    }

    init(policy: String, ruleIndex: Int, rule: JWTRule, environment: JWKSEnvironment) {
        var locations: [TokenLocation] = rule.fromHeaders.map { .header(name: $0.name.lowercased(), prefix: $0.prefix) }
        locations += rule.fromParams.map(TokenLocation.queryParameter)
        locations += rule.fromCookies.map(TokenLocation.cookie)
        if locations.isEmpty {
            locations = [.header(name: "authorization", prefix: "Bearer "), .queryParameter("access_token")]
        }
        var edits: [HeaderEdit] = []
        if !rule.forwardOriginalToken {
            for case .header(let name, _) in locations { edits.append(.remove(name)) }
        }
        if !rule.outputPayloadToHeader.isEmpty { edits.append(.setPayload(rule.outputPayloadToHeader)) }
        let keysProblem: String?
        if let location = rule.fetchedFrom {
            keysProblem = environment.problem(location, within: rule.timeoutMilliseconds ?? Self.defaultTimeoutMilliseconds)
        } else {
            keysProblem = JWTRule.holdsKeys(rule.jwks) ? nil : "the inline jwks holds no key"
        }
        storage = Storage(
            policy: policy, ruleIndex: ruleIndex, rule: rule, locations: locations,
            spaceDelimitedClaims: Set(["scope", "permission"] + rule.spaceDelimitedClaims), keysProblem: keysProblem,
            fixedHeaderEdits: edits)
    }

    /// The headers a rule writes (`outputPayloadToHeader`, `outputClaimToHeaders`), lower-cased,
    /// found once when the provider is made.
    public var outputHeaders: [String] { storage.outputHeaders }

    /// Removals of every header the providers write, as Envoy's JWT filter sanitizes them on every
    /// request: a client cannot send its own `x-jwt-payload` or claim header past the proxy, with
    /// a token, with a token lacking the claim, or with none.
    public static func sanitizing(_ providers: [JWTProvider]) -> [HeaderEdit] {
        // The usual rule writes no header: nothing to build, on the proxy's per-request path.
        guard providers.contains(where: { !$0.storage.outputHeaders.isEmpty }) else { return [] }
        var names: [String] = []
        for provider in providers {
            for name in provider.outputHeaders where !names.contains(name) { names.append(name) }
        }
        return names.map(HeaderEdit.remove)
    }

    /// The providers in the order Istio gives them to Envoy: sorted by issuer (an empty issuer
    /// first), the configuration order kept among rules of one issuer.
    public static func istioOrder(_ providers: [JWTProvider]) -> [JWTProvider] {
        guard providers.count > 1 else { return providers }
        return providers.enumerated()
            .sorted { ($0.element.rule.issuer, $0.offset) < ($1.element.rule.issuer, $1.offset) }
            .map(\.element)
    }

    public static func == (lhs: JWTProvider, rhs: JWTProvider) -> Bool {
        lhs.storage === rhs.storage
            || (lhs.policy == rhs.policy && lhs.ruleIndex == rhs.ruleIndex && lhs.rule == rhs.rule
                && lhs.locations == rhs.locations && lhs.spaceDelimitedClaims == rhs.spaceDelimitedClaims
                && lhs.keysAvailable == rhs.keysAvailable && lhs.fixedHeaderEdits == rhs.fixedHeaderEdits)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(policy)
        hasher.combine(ruleIndex)
        hasher.combine(rule)
        hasher.combine(locations)
        hasher.combine(keysAvailable)
    }

    /// Whether a token with this issuer and audience list is for this provider.
    func accepts(issuer: String?) -> Bool {
        rule.issuer.isEmpty || rule.issuer == issuer
    }

    /// An audience as Envoy compares it: without an `http://` or `https://` scheme and without a
    /// trailing `/`, so `https://api.example.com/` and `api.example.com` are the same audience.
    public static func sanitizedAudience(_ audience: String) -> Substring {
        let bytes = audience.utf8
        var start = bytes.startIndex
        var end = bytes.endIndex
        for scheme in ["http://", "https://"] where bytes.starts(with: scheme.utf8) {
            start = bytes.index(start, offsetBy: scheme.utf8.count)
            break
        }
        if start < end, bytes[bytes.index(before: end)] == UInt8(ascii: "/") { end = bytes.index(before: end) }
        return Substring(audience.utf8[start..<end])
    }

    /// Whether the token's `aud` satisfies the rule's audiences: an audience equal to one of them
    /// as written, or once both are sanitized (see `sanitizedAudience`).
    func acceptsAudience(_ claims: ClaimValue?) -> Bool {
        guard !rule.audiences.isEmpty else { return true }
        let audiences = claims?["aud"]?.matchableStrings ?? []
        if audiences.contains(where: rule.audiences.contains) { return true }
        let accepted = rule.audiences.map(Self.sanitizedAudience)
        return audiences.contains { accepted.contains(Self.sanitizedAudience($0)) }
    }

    /// The claims with the space-delimited ones split into lists.
    func normalize(_ claims: ClaimValue?) -> ClaimValue? {
        guard case .object(var members)? = claims else { return claims }
        for name in spaceDelimitedClaims {
            if case .string(let text)? = members[name] {
                members[name] = .array(text.split(separator: " ").map { .string(String($0)) })
            }
        }
        return .object(members)
    }
}

/// What the environment knows about fetching JWKS documents: unreachable URIs and slow ones. A
/// rule without `jwksUri` or `jwks` is looked up by its issuer's OIDC discovery URL.
public struct JWKSEnvironment: Sendable, Hashable {
    /// The state of one JWKS URI.
    public enum State: Sendable, Hashable {
        /// Fetching fails.
        case unreachable
        /// Fetching succeeds after this many milliseconds.
        case latency(Double)
    }

    /// The known states; URIs not listed are reachable at once.
    public let states: [String: State]
    /// Why an unreachable URI failed, where known (a fetch's own error).
    public let reasons: [String: String]

    /// Creates an environment.
    public init(states: [String: State] = [:], reasons: [String: String] = [:]) {
        self.states = states
        self.reasons = reasons
    }

    /// Why keys from `uri` do not arrive within `timeout` milliseconds, or nil when they do.
    public func problem(_ uri: String, within timeout: Double) -> String? {
        switch states[uri] {
        case nil: return nil
        case .unreachable?: return reasons[uri] ?? "\(uri) could not be fetched"
        case .latency(let milliseconds)?:
            return milliseconds <= timeout
                ? nil : "\(uri) answered after \(Self.text(milliseconds)), past the rule's timeout of \(Self.text(timeout))"
        }
    }

    private static func text(_ milliseconds: Double) -> String {
        milliseconds >= 1000 && milliseconds.truncatingRemainder(dividingBy: 1000) == 0
            ? "\(Int(milliseconds / 1000)) s" : "\(Int(milliseconds.rounded())) ms"
    }

    /// Whether keys from `uri` arrive within `timeout` milliseconds.
    public func reachable(_ uri: String, within timeout: Double) -> Bool {
        switch states[uri] {
        case nil: return true
        case .unreachable?: return false
        case .latency(let milliseconds)?: return milliseconds <= timeout
        }
    }
}
