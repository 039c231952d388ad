import RampartPolicy

/// A fetcher that answers as a stated JWKS environment says (`authz check --jwks-env`): URIs stated
/// unreachable fail, URIs slower than the timeout fail, and every other URI is fetched by `base`.
/// `statedBy` names where the states come from, for the errors.
public struct JWKSEnvironmentFetcher: HTTPFetcher {
    /// The stated fetch outcomes.
    public let environment: JWKSEnvironment
    /// The fetcher for URIs the environment does not state as failing.
    public let base: any HTTPFetcher
    /// What stated the environment, as the errors name it.
    public let statedBy: String

    /// Creates a fetcher over `base`.
    public init(
        environment: JWKSEnvironment, base: any HTTPFetcher = AsyncHTTPClientFetcher(),
        statedBy: String = "the JWKS environment file"
    ) {
        self.environment = environment
        self.base = base
        self.statedBy = statedBy
    }

    /// Fails as the environment states, or fetches with `base`.
    public func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        let milliseconds = Double(timeout.components.seconds) * 1000 + Double(timeout.components.attoseconds) / 1e15
        switch environment.states[url] {
        case .unreachable?:
            throw AuthnError(.keySourceUnavailable, "\(url) is stated unreachable by \(statedBy)")
        case .latency(let latency)? where latency > milliseconds:
            throw AuthnError(.keySourceUnavailable, "\(url) answers after \(Int(latency)) ms (\(statedBy)), past the rule's timeout of \(Int(milliseconds)) ms")
        default:
            return try await base.get(url, timeout: timeout)
        }
    }
}
