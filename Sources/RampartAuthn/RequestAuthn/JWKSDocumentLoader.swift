import Foundation

/// Reads the JWKS document of a source: inline text, one fetch, or OIDC discovery then a fetch.
struct JWKSDocumentLoader: Sendable {
    /// The fetcher for remote documents.
    let fetcher: any HTTPFetcher

    /// The JWKS text of `source`, each fetch bounded by `timeout`.
    func document(_ source: JWKSSource, timeout: Duration) async throws(AuthnError) -> String {
        switch source {
        case .inline(let json):
            return json
        case .uri(let uri):
            return try await fetcher.get(uri, timeout: timeout)
        case .discovery(let issuer):
            let url = JWKSSource.discoveryURL(issuer: issuer)
            let text = try await fetcher.get(url, timeout: timeout)
            let jwksURI = try Self.jwksURI(inDiscoveryDocument: text, url: url)
            return try await fetcher.get(jwksURI, timeout: timeout)
        }
    }

    /// The `jwks_uri` of an OIDC discovery document.
    static func jwksURI(inDiscoveryDocument text: String, url: String) throws(AuthnError) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(text.utf8))
        guard let document = object as? [String: Any] else {
            throw AuthnError(.keySourceUnavailable, "OIDC discovery document \(url) is not a JSON object: the issuer must serve its OpenID configuration there, or set jwksUri or jwks in the rule")
        }
        guard let uri = document["jwks_uri"] as? String, !uri.isEmpty else {
            throw AuthnError(.keySourceUnavailable, "OIDC discovery document \(url) has no jwks_uri string: set jwksUri or jwks in the rule")
        }
        return uri
    }
}
