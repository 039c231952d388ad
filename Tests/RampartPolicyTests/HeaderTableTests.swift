import Testing

@testable import RampartPolicy

@Suite("the request's header table")
struct HeaderTableTests {
    @Test("every header is found by its lower-case name, and absent ones are not")
    func lookups() {
        let request = Fixture.http(headers: ["X-Tenant": "a", "user-agent": "curl/8", "Content-Type": "text/plain"])
        let table = request.headerTable
        #expect(table.entries.count == 3)
        #expect(table.value(of: HeaderName("x-tenant")) == "a")
        #expect(table.value(of: HeaderName("user-agent")) == "curl/8")
        #expect(table.value(of: HeaderName("content-type")) == "text/plain")
        #expect(table.value(of: HeaderName("X-Tenant")) == nil)
        #expect(table.value(of: HeaderName("x-tenan")) == nil)
        #expect(table.index(of: HeaderName("accept")) == -1)
        #expect(AuthzRequest(destination: .init(namespace: "ns1")).headerTable.index(of: HeaderName("a")) == -1)
    }

    @Test("lookups agree with the request's dictionary over many headers")
    func agreesWithDictionary() {
        var headers: [String: String] = [:]
        for index in 0..<80 { headers["x-h\(index)"] = "v\(index * 7)" }
        headers["x-very-long-header-name-beyond-fifteen-bytes"] = "long"
        let request = Fixture.http(headers: headers)
        for index in 0..<100 {
            let name = "x-h\(index)"
            #expect(request.headerTable.value(of: HeaderName(name)) == request.headers[name])
        }
        #expect(request.headerTable.value(of: HeaderName("x-very-long-header-name-beyond-fifteen-bytes")) == "long")
    }

    @Test("requests with the same headers are equal and hash alike, whatever order the table holds")
    func equality() {
        var first: [String: String] = [:]
        var second: [String: String] = [:]
        for index in 0..<40 { first["x-\(index)"] = "\(index)" }
        for index in (0..<40).reversed() { second["x-\(index)"] = "\(index)" }
        second.reserveCapacity(500)
        let a = Fixture.http(headers: first)
        let b = Fixture.http(headers: second)
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a != Fixture.http(headers: ["x-0": "other"]))
    }

    @Test("checks on headers past the first four slots decide as the reference evaluator does")
    func manySlots() {
        let policies = Fixture.engine(
            Fixture.policy(
                "p", action: "DENY",
                rules: """
              - when:
                - {key: "request.headers[x-a]", values: ["1"]}
                - {key: "request.headers[x-b]", values: ["2"]}
                - {key: "request.headers[x-c]", values: ["3"]}
                - {key: "request.headers[x-d]", values: ["4"]}
                - {key: "request.headers[x-e]", values: ["5*"]}
                - {key: "request.headers[x-f]", notValues: ["6"]}
            """)
        ).snapshot.workload(namespace: "ns1", labels: [:])
        #expect(policies.resolved.program.headerNames.count == 6)
        let full = ["x-a": "1", "x-b": "2", "x-c": "3", "x-d": "4", "x-e": "55"]
        var cases: [([String: String], Bool)] = [(full, true)]
        cases.append((full.merging(["x-f": "6"]) { $1 }, false))
        cases.append((full.merging(["x-e": "4"]) { $1 }, false))
        cases.append((full.filter { $0.key != "x-e" }, false))
        cases.append((full.filter { $0.key != "x-a" }, false))
        for (headers, denied) in cases {
            let request = Fixture.http(headers: headers)
            #expect((policies.evaluate(request).decision == .deny) == denied, "\(headers)")
            #expect(policies.evaluate(request) == policies.evaluateReference(request))
        }
    }
}
