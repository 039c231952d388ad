import RampartPolicy

/// What request authentication concluded for one request: the outcome policy evaluates, the
/// status, why a token was refused, and the header edits for the upstream request.
public struct RequestAuthnResult: Sendable, Hashable {
    /// The outcome to put in `AuthzRequest.jwt` before evaluating policy.
    public let outcome: JWTOutcome
    /// Every token found, in rule and location order.
    public let found: [FoundToken]
    /// The tokens of the rule that accepted the request (none when ``failure`` is set).
    public let verified: [VerifiedToken]
    /// Why a token was refused, if one was.
    public let failure: JWTFailure?
    /// Header changes for the upstream request (none when a token was refused): the removal of
    /// every header the rules write, then what the accepting rule's tokens put there.
    public let headerEdits: [HeaderEdit]

    /// 200 when no token was refused; otherwise the failure's status (401, or 403 for the audience).
    public var status: Int { failure?.status ?? 200 }

    /// Whether the request carried a token in a location some rule reads.
    public var tokenPresent: Bool { !found.isEmpty }

    /// The result for a request with no token.
    public static let noToken = RequestAuthnResult(outcome: .absent, found: [], verified: [], failure: nil, headerEdits: [])
}
