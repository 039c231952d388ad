import Foundation
import RampartAuthn
import RampartPolicy
import Testing

@Suite("RequestAuthentication: finding tokens in requests")
struct TokenExtractionTests {
    let jwks = #"{"keys":[]}"#

    @Test("Istio's defaults: Authorization with the Bearer prefix stripped, and ?access_token=")
    func defaults() throws {
        let rules = try providers(rules: [inlineRule(jwks)])
        let header = TokenExtractor.extract(from: cartRequest(headers: ["Authorization": "Bearer abc.def.ghi"]), providers: rules)
        #expect(header.map(\.token) == ["abc.def.ghi"])
        #expect(header.first?.location == .header(name: "authorization", prefix: "Bearer "))
        let query = TokenExtractor.extract(from: cartRequest(path: "/items?x=1&access_token=abc%2Edef.ghi"), providers: rules)
        #expect(query.map(\.token) == ["abc.def.ghi"])
        #expect(query.first?.location == .queryParameter("access_token"))
    }

    @Test("a header that lacks the prefix holds no token")
    func prefixRequired() throws {
        let rules = try providers(rules: [inlineRule(jwks)])
        #expect(TokenExtractor.extract(from: cartRequest(headers: ["authorization": "Basic YWxpY2U6c2VjcmV0"]), providers: rules).isEmpty)
        #expect(TokenExtractor.extract(from: cartRequest(headers: ["authorization": "Bearer "]), providers: rules).isEmpty)
    }

    @Test("custom headers and prefixes, params and cookies replace the defaults")
    func customLocations() throws {
        let rules = try providers(rules: [
            inlineRule(jwks, more: "fromHeaders: [{name: X-Token, prefix: 'Token '}], fromParams: [jwt], fromCookies: [session]")
        ])
        let request = cartRequest(
            path: "/items?jwt=from.param.x",
            headers: ["x-token": "Token from.header.x", "cookie": "theme=dark; session=\"from.cookie.x\"", "authorization": "Bearer ignored.a.b"])
        let found = TokenExtractor.extract(from: request, providers: rules)
        #expect(found.map(\.token) == ["from.header.x", "from.param.x", "from.cookie.x"])
        #expect(found.map(\.locationDescription) == ["header x-token (prefix \"Token \")", "query parameter jwt", "cookie session"])
    }

    @Test("a location read by several rules yields the token once, with every rule that reads it")
    func sharedLocation() throws {
        let rules = try providers(rules: [inlineRule(jwks), inlineRule(jwks, issuer: "https://other.example")])
        let found = TokenExtractor.extract(from: cartRequest(headers: ["authorization": "Bearer a.b.c"]), providers: rules)
        #expect(found.count == 1)
        #expect(found.first?.providers.count == 2)
    }
}
