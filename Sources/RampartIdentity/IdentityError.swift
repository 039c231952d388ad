/// Why a SPIFFE ID, trust domain or path was refused.
///
public struct IdentityError: CodedError {
    /// The kinds of malformed identity input.
    public enum Code: String, Sendable, Hashable {
        case empty
        case badScheme
        case missingTrustDomain
        case badTrustDomainCharacter
        case badPathCharacter
        case emptySegment
        case dotSegment
        case trailingSlash
        case notAWorkloadIdentity
        /// A SPIFFE ID made from parts would be longer than `SPIFFEID.maxLength` bytes, or a CA's
        /// trust domain longer than `TrustDomain.maxLength` bytes.
        case tooLong
    }

    /// The kind of failure.
    public let code: Code
    /// What was wrong, with the offending value and what is expected instead.
    public let reason: String

    /// Creates an error with a code and a human-readable reason.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}
