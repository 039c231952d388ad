import Testing

@testable import RampartPolicy

/// Requests Istio's proxies refuse with 400 before any policy is evaluated. Istio's
/// "Authorization Policy Normalization" page (istio/istio.io
/// content/en/docs/reference/config/security/normalization/index.md) states the method rule
/// ("reject requests with HTTP 400 if the verb in the HTTP request is not in upper case") and the
/// header-name rule ("if the header name includes any white spaces"); the codec refuses other
/// non-token methods and names, and NUL, CR or LF in a value.
@Suite("requests refused before authorization")
struct MalformedRequestTests {
    private static func policies(_ yaml: String) -> WorkloadPolicies {
        Fixture.engine(yaml).snapshot.workload(namespace: "ns1", labels: ["app": "b"])
    }

    static let denyGet = policies(Fixture.policy("deny-get", action: "DENY", rules: "  - to: [{operation: {methods: [\"GET\"], ports: [\"8080\"]}}]"))

    @Test(
        "a method that is not upper case, or not a token, is answered 400 even where a DENY on GET would match",
        arguments: [
            ("get", "not upper case"), ("Get", "not upper case"), ("gET", "not upper case"), ("G ET", "not an HTTP token"),
            ("GET\r\n", "not an HTTP token"), ("", "empty"), ("GÉT", "not an HTTP token"),
        ])
    func method(method: String, words: String) {
        for policies in [Self.denyGet, Self.policies("")] {
            let request = Fixture.http(method: method)
            let decision = policies.evaluate(request)
            #expect(decision.decision == .deny && decision.status == 400 && decision.policy == nil, "\(method)")
            #expect(decision.reason.contains(words), "\(decision.reason)")
            #expect(decision == policies.evaluateReference(request))
        }
    }

    @Test("upper-case methods, known or not, are decided by the policies")
    func upperCase() {
        #expect(Self.denyGet.evaluate(Fixture.http(method: "GET")).status == 403)
        for method in ["POST", "PURGE", "M-SEARCH", "FOO_BAR"] {
            let decision = Self.denyGet.evaluate(Fixture.http(method: method))
            #expect(decision.status == 200, "\(method): \(decision.reason)")
        }
    }

    @Test(
        "a header name with white space or outside the token characters, or a value with NUL, CR or LF, is answered 400",
        arguments: [
            (["x bad": "1"], "white space"), (["x\tbad": "1"], "white space"), (["x(y)": "1"], "not an HTTP token"),
            (["": "1"], "empty name"), (["x-a": "a\r\nx-b: c"], "NUL, CR or LF"), (["x-a": "a\u{0}b"], "NUL, CR or LF"),
        ])
    func header(headers: [String: String], words: String) {
        let request = Fixture.http(headers: headers)
        let decision = Self.denyGet.evaluate(request)
        #expect(decision.status == 400, "\(headers): \(decision.reason)")
        #expect(decision.reason.contains(words), "\(decision.reason)")
        #expect(decision == Self.denyGet.evaluateReference(request))
    }

    @Test("ordinary names and values, pseudo-header names and TCP connections are not refused")
    func notRefused() {
        let headers = ["X-Tenant": "a b\tc", ":authority": "b.ns1", "user-agent": "curl/8.0 (x86_64)", "x-empty": ""]
        #expect(Self.policies("").evaluate(Fixture.http(headers: headers)).status == 200)
        #expect(Self.policies("").evaluate(Fixture.tcp()).status == 200)
        #expect(Fixture.http(method: "get").malformation != nil && Fixture.tcp().malformation == nil)
    }

    @Test("the token bytes are exactly RFC 9110's tchar: letters, digits and !#$%&'*+-.^_`|~")
    func tokenBytes() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(AuthzRequest.isTokenByte(byte) == tchar.contains(byte), "byte \(byte)")
        }
        #expect(AuthzRequest.isHeaderToken("x-forwarded-for") && AuthzRequest.isHeaderToken("Content_Type~1"))
        #expect(!AuthzRequest.isHeaderToken("") && !AuthzRequest.isHeaderToken("a b") && !AuthzRequest.isHeaderToken("a:b"))
    }
}
