import Testing

@testable import RampartPolicy

@Suite("request files")
struct RequestDecodingTests {
    @Test("a header sent more than once is a list, joined with commas as Envoy matches it")
    func repeatedHeaders() throws {
        let request = try AuthzRequest(
            text: """
                destination: {namespace: ns1, labels: {app: b}, port: 8080}
                method: GET
                path: /
                headers: {x-foo: [a, b], x-one: single, x-count: 3}
                """)
        #expect(request.headers["x-foo"] == "a,b")
        #expect(request.headers["x-one"] == "single")
        #expect(request.headers["x-count"] == "3")
        let policies = Fixture.engine(
            Fixture.policy("p", rules: "  - when: [{key: \"request.headers[x-foo]\", values: [\"a,b\"]}]")
        ).snapshot.workload(namespace: "ns1", labels: ["app": "b"])
        #expect(policies.evaluate(request).decision == .allow)
        #expect(policies.evaluateReference(request).decision == .allow)
    }

    @Test("a header value that is a mapping, null or a nested list is refused, naming the header")
    func badHeaderValues() {
        for value in ["{a: b}", "null", "[a, [b]]", "[a, {b: c}]"] {
            do {
                _ = try AuthzRequest(text: "destination: {namespace: ns1}\nheaders: {x-foo: \(value)}\n")
                Issue.record("accepted \(value)")
            } catch {
                #expect(error.field == "headers.x-foo", "\(value)")
                #expect(error.reason.contains("list of strings"), "\(value)")
            }
        }
    }
}
