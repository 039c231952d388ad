import RampartIdentity

/// Why a PKI operation was refused.
public struct PKIError: CodedError {
    /// The kinds of PKI failure.
    public enum Code: String, Sendable, Hashable {
        /// The CSR is not PEM, not DER, or not a CSR.
        case malformedCSR
        /// The CSR's self-signature does not verify.
        case badCSRSignature
        /// The CSR uses a signature algorithm Rampart does not accept (RSA-PSS, for one).
        case unsupportedSignatureAlgorithm
        /// The key is not P-256, P-384 or RSA of at least 2048 bits.
        case unsupportedKey
        /// The CSR asks for an identity other than the caller's.
        case identityMismatch
        /// The CSR asks for a CA certificate.
        case caRequested
        /// The requested lifetime is outside the allowed range.
        case badValidity
        /// CA material is missing, inconsistent, or not a CA.
        case badCAMaterial
        /// A freshly signed certificate failed validation against the trust bundle.
        case validationFailed
        /// An identity is not usable for an X.509-SVID.
        case badIdentity
    }

    /// The kind of failure.
    public let code: Code
    /// What was wrong, and what to do about it.
    public let reason: String

    /// Creates an error with a code and a reason.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}
