import Foundation

/// An issuer whose JWTs the CA accepts, with where its signing keys come from.
public struct TrustedIssuer: Sendable, Equatable {
    /// Where a JWKS document is read from.
    public enum KeySource: Sendable, Equatable, CustomStringConvertible {
        /// A local JWKS file.
        case file(String)
        /// An `http(s)://` JWKS URL, fetched at start and again when a token names an unknown key.
        case url(String)

        /// Reads `FILE` or `http(s)://…` as a key source.
        public init(_ text: String) {
            if text.hasPrefix("https://") || text.hasPrefix("http://") {
                self = .url(text)
            } else {
                self = .file(text)
            }
        }

        public var description: String {
            switch self {
            case .file(let path): return path
            case .url(let url): return url
            }
        }
    }

    /// The `iss` claim value.
    public let issuer: String
    /// Where the issuer's JWKS lives.
    public let keys: KeySource

    /// Creates a trusted issuer.
    public init(issuer: String, keys: KeySource) {
        self.issuer = issuer
        self.keys = keys
    }
}
