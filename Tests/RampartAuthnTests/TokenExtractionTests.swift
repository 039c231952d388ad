import Foundation
@testable import RampartAuthn
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

    @Test("a parameter, a cookie or an unprefixed header that is present holds a token even when empty; a prefixed header without its prefix holds none")
    func emptyValues() throws {
        let rules = try providers(rules: [
            inlineRule(jwks, more: "fromHeaders: [{name: x-jwt}, {name: x-token, prefix: 'Token '}], fromParams: [jwt], fromCookies: [session]")
        ])
        let request = cartRequest(path: "/items?jwt=&page=2", headers: ["x-jwt": "", "x-token": "", "cookie": "session=; theme=dark"])
        let found = TokenExtractor.extract(from: request, providers: rules)
        #expect(found.map(\.token) == ["", "", ""], "\(found.map(\.token))")
        #expect(found.map(\.locationDescription) == ["header x-jwt", "query parameter jwt", "cookie session"])
        #expect(TokenExtractor.extract(from: cartRequest(path: "/items?page=2"), providers: rules).isEmpty)
    }

    @Test("cookies are split as Envoy splits them: only the spaces before a name go, and a value is kept as sent, unquoted")
    func cookiesAsEnvoyReadsThem() {
        #expect(TokenExtractor.cookies(in: "a=1; jwt=x.y.z") == ["a": "1", "jwt": "x.y.z"])
        #expect(TokenExtractor.cookies(in: "a=1;  jwt=\"x.y.z\"; jwt=second") == ["a": "1", "jwt": "x.y.z"])
        // A space before `=` stays in the name, one after it in the value; a tab is not a space.
        #expect(TokenExtractor.cookies(in: "a=1; jwt =x.y.z")["jwt"] == nil)
        #expect(TokenExtractor.cookies(in: "a=1; jwt= x.y.z")["jwt"] == " x.y.z")
        #expect(TokenExtractor.cookies(in: "a=1;\tjwt=x.y.z")["jwt"] == nil)
        // A pair without `=` is skipped; an empty value and an empty name are cookies all the same.
        #expect(TokenExtractor.cookies(in: "flag; jwt=; =v") == ["jwt": "", "": "v"])
        #expect(TokenExtractor.cookies(in: "jwt=a=b") == ["jwt": "a=b"])
    }

    @Test("a location read by several rules yields the token once, with every rule that reads it")
    func sharedLocation() throws {
        let rules = try providers(rules: [inlineRule(jwks), inlineRule(jwks, issuer: "https://other.example")])
        let found = TokenExtractor.extract(from: cartRequest(headers: ["authorization": "Bearer a.b.c"]), providers: rules)
        #expect(found.count == 1)
        #expect(found.first?.providers.count == 2)
    }

    @Test("a header value holds the rest of the value after the prefix, as Envoy's extractor reads it")
    func restOfValue() throws {
        #expect(TokenExtractor.headerToken("Bearer a.b.c, other", prefix: "Bearer ") == "a.b.c, other")
        #expect(TokenExtractor.headerToken("preamble CCCDDD=jwt_token,extra=more", prefix: "CCCDDD") == "jwt_token,extra=more")
        #expect(TokenExtractor.headerToken("CCCDDD=\"and0X3Rva2Vu\"", prefix: "CCCDDD") == "and0X3Rva2Vu\"")
        // Nothing a token can start with after the prefix: the value is taken whole, and fails to parse.
        #expect(TokenExtractor.headerToken("Bearer !!!", prefix: "Bearer ") == "Bearer !!!")
        #expect(TokenExtractor.headerToken("  a.b.c\t", prefix: "") == "a.b.c")
        #expect(TokenExtractor.headerToken("bearer a.b.c", prefix: "Bearer ") == nil)
    }

    @Test("a header sent more than once is read value by value: each value may hold a token")
    func repeatedHeader() throws {
        let rules = try providers(rules: [inlineRule(jwks)])
        let request = AuthzRequest(
            destination: .init(namespace: "shop", labels: ["app": "cart"], port: 8080), method: "GET", host: "cart",
            path: "/items", headers: ["authorization": "Bearer a.b.c,Bearer d.e.f"],
            repeatedHeaders: ["Authorization": ["Bearer a.b.c", "Bearer d.e.f"]])
        #expect(request.repeatedHeaders["authorization"] == ["Bearer a.b.c", "Bearer d.e.f"])
        let found = TokenExtractor.extract(from: request, providers: rules)
        #expect(found.map(\.token) == ["a.b.c", "d.e.f"])
        // The same text in one value is one token that does not parse.
        let joined = TokenExtractor.extract(from: cartRequest(headers: ["authorization": "Bearer a.b.c,Bearer d.e.f"]), providers: rules)
        #expect(joined.map(\.token) == ["a.b.c,Bearer d.e.f"])
    }

    @Test("a token read from a query parameter is removed from the target when the rule does not forward it")
    func queryParameterRemoval() {
        #expect(RequestTarget.removingQueryParameter("access_token", from: "/items?access_token=a.b.c") == "/items")
        #expect(RequestTarget.removingQueryParameter("access_token", from: "/items?x=1&access_token=a.b.c&y=2") == "/items?x=1&y=2")
        #expect(RequestTarget.removingQueryParameter("access_token", from: "/items?access%5Ftoken=a&access_token=b#top") == "/items#top")
        #expect(RequestTarget.removingQueryParameter("access_token", from: "/items?token=a") == "/items?token=a")
        #expect(RequestTarget.removingQueryParameter("access_token", from: "/items") == "/items")
    }
}
