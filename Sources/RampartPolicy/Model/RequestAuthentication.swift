import Foundation

/// An Istio RequestAuthentication: which JWT issuers a workload accepts and how tokens are found.
public struct RequestAuthentication: Sendable, Hashable {
    /// Name, namespace and annotations.
    public internal(set) var metadata: ResourceMetadata
    /// Where the resource was read from.
    public let location: SourceLocation
    /// The workload selector, if any.
    public let selector: WorkloadSelector?
    /// `targetRef`, if given.
    public let targetRef: PolicyTargetReference?
    /// `targetRefs`, if given.
    public let targetRefs: [PolicyTargetReference]
    /// Whether `targetRefs` was written, even as an empty list: Istio's schema counts a field
    /// present when it is written (`has()`), so `selector` beside `targetRefs: []` is refused.
    public let targetRefsWritten: Bool
    /// The JWT rules.
    public let jwtRules: [JWTRule]

    /// Creates a request authentication.
    public init(
        metadata: ResourceMetadata, location: SourceLocation, selector: WorkloadSelector?,
        targetRef: PolicyTargetReference?, targetRefs: [PolicyTargetReference], targetRefsWritten: Bool? = nil, jwtRules: [JWTRule]
    ) {
        self.metadata = metadata
        self.location = location
        self.selector = selector
        self.targetRef = targetRef
        self.targetRefs = targetRefs
        self.targetRefsWritten = targetRefsWritten ?? !targetRefs.isEmpty
        self.jwtRules = jwtRules
    }

    /// The identifier used in diagnostics.
    public var id: ResourceID {
        ResourceID(kind: .requestAuthentication, namespace: metadata.namespace, name: metadata.name)
    }
}

/// One `jwtRules` entry: an issuer, its keys, where its tokens are and what to forward.
public struct JWTRule: Sendable, Hashable {
    /// A header a token is read from, with the prefix stripped before it.
    public struct HeaderLocation: Sendable, Hashable {
        /// The header name.
        public let name: String
        /// The prefix before the token, such as `Bearer `.
        public let prefix: String

        /// Creates a header location.
        public init(name: String, prefix: String) {
            self.name = name
            self.prefix = prefix
        }
    }

    /// A claim copied into a request header.
    public struct ClaimToHeader: Sendable, Hashable {
        /// The header to set.
        public let header: String
        /// The claim (dots address nested claims).
        public let claim: String

        /// Creates a claim-to-header mapping.
        public init(header: String, claim: String) {
            self.header = header
            self.claim = claim
        }
    }

    /// What the rule does with a missing or failing token (`presence`).
    public enum Presence: String, Sendable, Hashable {
        /// No token is let through anonymous; a token that fails is refused (the default).
        case optional = "OPTIONAL"
        /// A request without a token is refused (401).
        case required = "REQUIRED"
        /// A token that fails this rule is ignored: the request goes on as one without a token
        /// (Envoy's `allow_missing_or_failed`).
        case ignored = "IGNORED"
    }

    /// The expected `iss`.
    public let issuer: String
    /// Accepted `aud` values; empty accepts any.
    public let audiences: [String]
    /// Where the JWKS is fetched from.
    public let jwksURI: String
    /// An inline JWKS document.
    public let jwks: String
    /// Headers to read the token from.
    public let fromHeaders: [HeaderLocation]
    /// Query parameters to read the token from.
    public let fromParams: [String]
    /// Cookies to read the token from.
    public let fromCookies: [String]
    /// The header to put the base64url payload in.
    public let outputPayloadToHeader: String
    /// Whether the original token is forwarded upstream.
    public let forwardOriginalToken: Bool
    /// Claims copied into headers.
    public let outputClaimToHeaders: [ClaimToHeader]
    /// The JWKS fetch timeout in milliseconds, if given.
    public let timeoutMilliseconds: Double?
    /// Claims whose string value is split on spaces, in addition to `scope` and `permission`.
    public let spaceDelimitedClaims: [String]
    /// Whether a token is required, or a failing one ignored.
    public let presence: Presence?
    /// Whether a proxy writes a failed verification's status into its dynamic metadata
    /// (`failedStatusInMetadata`); read and kept, since Rampart's proxy has no dynamic metadata.
    public let failedStatusInMetadata: Bool

    /// Creates a JWT rule.
    public init(
        issuer: String, audiences: [String] = [], jwksURI: String = "", jwks: String = "",
        fromHeaders: [HeaderLocation] = [], fromParams: [String] = [], fromCookies: [String] = [],
        outputPayloadToHeader: String = "", forwardOriginalToken: Bool = false,
        outputClaimToHeaders: [ClaimToHeader] = [], timeoutMilliseconds: Double? = nil,
        spaceDelimitedClaims: [String] = [], presence: Presence? = nil, failedStatusInMetadata: Bool = false
    ) {
        self.issuer = issuer
        self.audiences = audiences
        self.jwksURI = jwksURI
        self.jwks = jwks
        self.fromHeaders = fromHeaders
        self.fromParams = fromParams
        self.fromCookies = fromCookies
        self.outputPayloadToHeader = outputPayloadToHeader
        self.forwardOriginalToken = forwardOriginalToken
        self.outputClaimToHeaders = outputClaimToHeaders
        self.timeoutMilliseconds = timeoutMilliseconds
        self.spaceDelimitedClaims = spaceDelimitedClaims
        self.presence = presence
        self.failedStatusInMetadata = failedStatusInMetadata
    }

    /// Where the rule's keys are fetched from: `jwksUri`, else the issuer's OIDC discovery
    /// document; nil when the rule holds its keys inline (`jwks`).
    public var fetchedFrom: String? {
        guard jwks.isEmpty else { return nil }
        return jwksURI.isEmpty ? Self.discoveryURL(issuer: issuer) : jwksURI
    }

    /// Where the keys come from, for messages.
    public var keySourceText: String {
        Self.keySourceText(jwks: jwks, jwksURI: jwksURI, issuer: issuer)
    }

    /// Where a rule with these fields gets its keys, for messages: its inline `jwks`, else its
    /// `jwksUri`, else its issuer's OIDC discovery.
    public static func keySourceText(jwks: String, jwksURI: String, issuer: String) -> String {
        if !jwks.isEmpty { return "the rule's inline jwks" }
        if !jwksURI.isEmpty { return "jwksUri \(jwksURI)" }
        return "OIDC discovery at \(discoveryURL(issuer: issuer))"
    }

    /// The OIDC discovery URL of an issuer: `<issuer>/.well-known/openid-configuration`.
    public static func discoveryURL(issuer: String) -> String {
        var base = issuer
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/.well-known/openid-configuration"
    }

    /// Whether a JWKS document holds keys: a JSON object with a non-empty `keys` array, or the
    /// X.509 form some issuers publish (each `kid` mapped to a PEM certificate), which Envoy reads
    /// too. Envoy verifies no token with a document that holds none (an empty set, or text that is
    /// neither form).
    public static func holdsKeys(_ document: String) -> Bool {
        guard let object = try? JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any] else {
            return false
        }
        if let keys = object["keys"] as? [Any] { return !keys.isEmpty }
        return !object.isEmpty
            && object.values.allSatisfy { ($0 as? String)?.contains("-----BEGIN CERTIFICATE-----") == true }
    }
}
