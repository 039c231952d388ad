import Foundation
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

    @Test("header and label values are the text written: 1.10, 0123, 0x1F and yes are not numbers or booleans")
    func valuesAsWritten() throws {
        let request = try AuthzRequest(
            text: """
                destination: {namespace: ns1, labels: {app: b, version: 1.10, build: 0x1F}}
                headers: {x-version: 1.10, x-code: 0123, x-flag: yes, x-list: [1.0, on]}
                """)
        #expect(request.destination.labels == ["app": "b", "version": "1.10", "build": "0x1F"])
        #expect(request.headers["x-version"] == "1.10" && request.headers["x-code"] == "0123" && request.headers["x-flag"] == "yes")
        #expect(request.headers["x-list"] == "1.0,on")
        // A policy written for the text matches it.
        let workload = Fixture.engine(
            Fixture.policy("p", rules: "  - when: [{key: \"request.headers[x-version]\", values: [\"1.10\"]}]")
        ).snapshot.workload(namespace: "ns1", labels: ["app": "b"])
        #expect(workload.evaluate(request).decision == .allow)
    }

    @Test("a peer's SPIFFE ID is read with or without spiffe://; an empty one is refused")
    func principalSpelling() throws {
        let written = try AuthzRequest(text: "source: {principal: spiffe://cluster.local/ns/a/sa/b}\ndestination: {namespace: ns1}\n")
        #expect(written.source.principal == "cluster.local/ns/a/sa/b")
        let bare = try AuthzRequest(text: "source: {principal: cluster.local/ns/a/sa/b}\ndestination: {namespace: ns1}\n")
        #expect(bare.source.principal == "cluster.local/ns/a/sa/b")
        #expect(throws: RequestDecodingError.self) { try AuthzRequest(text: "source: {principal: ''}\ndestination: {namespace: ns1}\n") }
    }

    @Test("the destination's own SPIFFE ID may be given, with or without spiffe://; an empty one is refused, naming the field")
    func destinationPrincipal() throws {
        let given = try AuthzRequest(text: "destination: {namespace: ns1, principal: spiffe://td/ns/ns1/sa/reviews}\n")
        #expect(given.destination.principal == "td/ns/ns1/sa/reviews")
        #expect(try AuthzRequest(text: "destination: {namespace: ns1}\n").destination.principal == nil)
        do {
            _ = try AuthzRequest(text: "destination: {namespace: ns1, principal: ''}\n")
            Issue.record("an empty destination principal was accepted")
        } catch {
            #expect(error.field == "destination.principal", "\(error)")
        }
    }

    @Test("an absolute-form path is read as the proxy reads it: its path, its authority the host")
    func absoluteFormPath() throws {
        let request = try AuthzRequest(text: "destination: {namespace: ns1}\nhost: other\npath: http://app.ns1.svc/admin?x=1\n")
        #expect(request.path == "/admin?x=1")
        #expect(request.host == "app.ns1.svc")
        let denied = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - to: [{operation: {paths: [\"/admin*\"]}}]"))
        #expect(denied.snapshot.evaluate(request).decision == .deny)
        #expect(throws: RequestDecodingError.self) { try AuthzRequest(text: "destination: {namespace: ns1}\npath: http://user@app/x\n") }
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

@Suite("request files refuse what they cannot mean")
struct RequestFileStrictnessTests {
    private static let destination = "destination: {namespace: ns1, labels: {app: b}, port: 8080}\n"

    @Test("the request principal is the claims' iss/sub; a stated one that agrees, or one without those claims, is kept")
    func requestPrincipal() throws {
        let derived = try AuthzRequest(text: Self.destination + "jwt: {present: true, claims: {iss: iss1, sub: sub1}}\n")
        #expect(derived.jwt?.requestPrincipal == "iss1/sub1")
        let agreeing = try AuthzRequest(
            text: Self.destination + "jwt: {present: true, claims: {iss: iss1, sub: sub1}, request_principal: iss1/sub1}\n")
        #expect(agreeing.jwt?.requestPrincipal == "iss1/sub1")
        let stated = try AuthzRequest(text: Self.destination + "jwt: {present: true, claims: {aud: x}, request_principal: iss2/sub2}\n")
        #expect(stated.jwt?.requestPrincipal == "iss2/sub2")
    }

    @Test(
        "a wrongly typed, out-of-range or misspelt field is refused, naming it",
        arguments: [
            ("jwt: {present: true, valid: \"false\"}", "jwt.valid"),
            ("jwt: {present: true, valid: 0}", "jwt.valid"),
            ("jwt: {present: \"yes\"}", "jwt.present"),
            ("jwt: {present: true, claims: notamap}", "jwt.claims"),
            ("jwt: {present: true, vaild: true}", "jwt.vaild"),
            ("source: {principal: cluster.local/ns/a/sa/b, mtls: \"false\"}", "source.mtls"),
            ("source: {principal: 5}", "source.principal"),
            ("source: {ip: 999.1.1.1}", "source.ip"),
            ("source: {remote_ip: not-an-ip}", "source.remote_ip"),
            ("source: {principle: x}", "source.principle"),
            ("methdo: GET", "methdo"),
            ("path: [a]", "path"),
            ("jwt: {present: true, claims: {iss: iss1, sub: sub1}, request_principal: iss9/zzz}", "jwt.request_principal"),
        ])
    func refused(line: String, field: String) {
        do {
            _ = try AuthzRequest(text: Self.destination + line + "\n")
            Issue.record("accepted \(line)")
        } catch {
            #expect(error.field == field, "\(line)")
            #expect(!error.reason.isEmpty)
        }
    }

    @Test("an empty request, or one without a destination, is refused; a wrong type is named as a mapping or list, not printed")
    func requiredAndTypes() throws {
        for (text, field, words) in [
            ("{}", "destination", "the request is empty"),
            ("protocol: HTTP\npath: /\n", "destination", "missing"),
            ("destination: {namespace: ns1}\njwt: {request_principal: {a: b}}\n", "jwt.request_principal", "found a mapping"),
            ("destination: {namespace: ns1}\nmethod: [GET]\n", "method", "found a list"),
        ] {
            do {
                _ = try AuthzRequest(text: text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.field == field && error.reason.contains(words), "\(text): \(error)")
            }
        }
        #expect(try AuthzRequest(text: "destination: {namespace: ns1}\n").destination.namespace == "ns1")
    }

    @Test("a request that is not YAML is refused with the place and the problem in one line; a file that is not UTF-8 says so")
    func unreadableRequests() throws {
        do {
            _ = try AuthzRequest(text: "{\"destination\": {\"namespace\": \"ns1\"}\n\"method\" \"GET\"}")
            Issue.record("accepted")
        } catch {
            #expect(error.reason.contains("line 2") && !error.reason.contains("\n"), "\(error)")
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("request-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(Array("destination: {namespace: ns1}\nmethod: G".utf8) + [0xFF]).write(to: file)
        do {
            _ = try AuthzRequest(file: file.path)
            Issue.record("accepted")
        } catch {
            #expect(error.reason.contains("not UTF-8") && error.reason.contains("line 2"), "\(error)")
        }
    }

    @Test("two spellings of one header, a label that is not text, and a namespace that is not one are refused, naming the field")
    func ambiguousOrInvalid() {
        let cases: [(String, String, String)] = [
            ("destination: {namespace: ns1}\nheaders: {X-Env: prod, x-env: dev}\n", "headers", "X-Env and x-env name the same header"),
            ("destination: {namespace: ns1, labels: {app: {a: b}}}\n", "destination.labels.app", "expected a string, found a mapping"),
            ("destination: {namespace: Shop_NS}\n", "destination.namespace", "is not a namespace name"),
        ]
        for (text, field, says) in cases {
            do {
                _ = try AuthzRequest(text: text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.field == field && error.reason.contains(says), "\(error)")
            }
        }
    }

    @Test("ports outside 1-65535 are refused")
    func ports() {
        for port in ["-1", "0", "99999", "\"http\"", "80.5"] {
            do {
                _ = try AuthzRequest(text: "destination: {namespace: ns1, port: \(port)}\n")
                Issue.record("accepted \(port)")
            } catch {
                #expect(error.field == "destination.port", "\(port)")
            }
        }
        #expect((try? AuthzRequest(text: "destination: {namespace: ns1, port: \"8080\"}\n"))?.destination.port == 8080)
    }

    @Test("the corpus's own fields are all accepted")
    func corpusFields() throws {
        let request = try AuthzRequest(
            text: """
                protocol: HTTP
                source: {principal: cluster.local/ns/a/sa/b, namespace: a, ip: 10.0.0.1, remote_ip: "2001:db8::1", mtls: true}
                destination: {namespace: ns1, labels: {app: b, version: 1}, port: 8080, ip: 10.0.0.2}
                method: GET
                host: b.ns1
                path: /x
                headers: {x-a: "1"}
                ext_authz: allow
                sni: b.ns1
                jwt: {present: true, valid: false, claims: {iss: i, sub: s}, request_principal: i/s, location: header, raw: r, reason: bad, note: n}
                """)
        #expect(request.jwt?.valid == false)
        #expect(request.source.remoteIP == "2001:db8::1")
        #expect(request.destination.labels["version"] == "1")
    }
}

@Suite("JWKS environment files")
struct JWKSEnvironmentFileTests {
    @Test("a list, a misspelt key, a string or a quoted latency is refused, naming the field")
    func refused() throws {
        for (text, field) in [
            ("[a, b]", ""), ("unreachabel: [http://x]", "unreachabel"), ("unreachable: http://x", "unreachable"),
            ("latency_ms: {\"http://x\": \"9000\"}", "latency_ms.http://x"), ("latency_ms: [1]", "latency_ms"),
        ] {
            do {
                _ = try JWKSEnvironment.from(try PlainYAML.parse(text))
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.field == field, "\(text)")
            }
        }
    }

    @Test("a well-formed file, or an empty one, is read")
    func accepted() throws {
        let environment = try JWKSEnvironment.from(
            try PlainYAML.parse("unreachable: [\"http://a\"]\nlatency_ms: {\"http://b\": 250}"))
        #expect(environment.states["http://a"] == .unreachable)
        #expect(environment.states["http://b"] == .latency(250))
        #expect(try JWKSEnvironment.from(try PlainYAML.parse("")).states.isEmpty)
    }

    @Test("a key that is a mapping or a list is refused with an error, not a crash")
    func complexKeys() {
        for text in [
            #"{"destination": {"namespace": "ns1"}, "method": "GET"} :"#,
            "? [a, b]\n: x\n",
            "destination:\n  ? {namespace: ns1}\n  : x\n",
        ] {
            do {
                _ = try AuthzRequest(text: text)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.reason.contains("is a mapping or a list"), "\(error)")
            }
        }
    }

    @Test("aliases expand, up to a bound: a document that expands without end is refused")
    func aliasExpansion() throws {
        let request = try AuthzRequest(text: "destination: &d {namespace: ns1, labels: {app: b}}\nmethod: GET\nheaders: {x-a: &v one, x-b: *v}\n")
        #expect(request.headers["x-b"] == "one")
        var laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...8 {
            let items = Array(repeating: "*\(level == 1 ? "a" : "l\(level - 1)")", count: 10).joined(separator: ", ")
            laughs += "l\(level): &l\(level) [\(items)]\n"
        }
        do {
            _ = try PlainYAML.parse(laughs)
            Issue.record("the expansion was accepted")
        } catch {
            #expect(error.reason.contains("more than"), "\(error)")
        }
    }

    @Test("scalars keep YAML's types: null, booleans, integers, floats, else strings")
    func scalarTypes() throws {
        let value = try PlainYAML.parse("a: ~\nb: true\nc: 8080\nd: 1.5\ne: \"8080\"\nf: text\n") as? [String: Any]
        #expect(value?["a"] is NSNull)
        #expect(value?["b"] as? Bool == true)
        #expect(value?["c"] as? Int == 8080)
        #expect(value?["d"] as? Double == 1.5)
        #expect(value?["e"] as? String == "8080")
        #expect(value?["f"] as? String == "text")
    }

    @Test("a field at fault in a request file or a workload list is placed at its line")
    func faultLines() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lines-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func failure(_ text: String, workloads: Bool = false) throws -> RequestDecodingError? {
            let file = directory.appendingPathComponent("\(UUID().uuidString).yaml")
            try Data(text.utf8).write(to: file)
            do {
                if workloads { _ = try Workload.list(file: file.path) } else { _ = try AuthzRequest(file: file.path) }
                return nil
            } catch {
                return error
            }
        }
        let misspelt = try #require(try failure("protocol: HTTP\ndestination:\n  namespace: shop\n  labelz: {app: a}\n"))
        #expect(misspelt.field == "destination.labelz" && misspelt.line == 4)
        #expect(misspelt.place("r.yaml") == "r.yaml:4")
        let port = try #require(try failure("{\"destination\": {\"namespace\": \"shop\",\n  \"port\": \"http\"}}"))
        #expect(port.field == "destination.port" && port.line == 2)
        // A header name with a dot in it is one key, not two.
        let header = try #require(try failure("destination: {namespace: shop}\nheaders:\n  x-a: b\n  x.y: {a: 1}\n"))
        #expect(header.field == "headers.x.y" && header.line == 4, "\(header)")
        let workload = try #require(
            try failure("- namespace: shop\n  labels: {app: a}\n- namespace: shop\n  ports:\n  - {port: 0, name: http}\n", workloads: true))
        #expect(workload.field == "[1].ports[0].port" && workload.line == 5, "\(workload)")
        // A list that cannot be read says why and what to do.
        do {
            _ = try Workload.list(file: directory.appendingPathComponent("missing.yaml").path)
            Issue.record("a missing workload list was read")
        } catch {
            #expect(error.reason.contains("no such file") && error.reason.contains("workload list"), "\(error)")
        }
        let notText = directory.appendingPathComponent("latin1.yaml")
        try Data([0x2D, 0x20, 0xE9, 0x0A]).write(to: notText)
        do {
            _ = try Workload.list(file: notText.path)
            Issue.record("a workload list that is not UTF-8 was read")
        } catch {
            #expect(error.reason.contains("UTF-8"), "\(error)")
        }
        // A whole document at fault has no line; the workload list wrapped in a key says how to unwrap it.
        let wrapped = try #require(try failure("workloads:\n- namespace: shop\n", workloads: true))
        #expect(wrapped.line == nil && wrapped.reason.contains("remove the `workloads:` key"))
        #expect(wrapped.place("w.yaml") == "w.yaml")
    }

    @Test("a cookie header listed several times is one cookie field joined with '; ', as Envoy joins cookie pieces; other headers join with ','")
    func cookiePieces() throws {
        let request = try AuthzRequest(text: "destination: {namespace: ns1}\nheaders: {cookie: [a=1, b=2], x-list: [c, d]}\n")
        #expect(request.headers["cookie"] == "a=1; b=2")
        #expect(request.headers["x-list"] == "c,d")
    }
}
