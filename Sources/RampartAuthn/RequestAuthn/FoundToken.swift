import RampartPolicy

/// A token found in a request, with the location it was in and the rules that read that location.
public struct FoundToken: Sendable, Hashable {
    /// The token, with the location's prefix removed.
    public let token: String
    /// Where it was.
    public let location: JWTProvider.TokenLocation
    /// The rules that read this location, in configuration order; only they may verify it.
    public let providers: [JWTProvider]

    /// Creates a found token.
    public init(token: String, location: JWTProvider.TokenLocation, providers: [JWTProvider]) {
        self.token = token
        self.location = location
        self.providers = providers
    }

    /// The location for messages: `header authorization`, `query parameter access_token`, `cookie session`.
    public var locationDescription: String { Self.describe(location) }

    /// A location for messages.
    public static func describe(_ location: JWTProvider.TokenLocation) -> String {
        switch location {
        case .header(let name, let prefix): return prefix.isEmpty ? "header \(name)" : "header \(name) (prefix \"\(prefix)\")"
        case .queryParameter(let name): return "query parameter \(name)"
        case .cookie(let name): return "cookie \(name)"
        }
    }
}
