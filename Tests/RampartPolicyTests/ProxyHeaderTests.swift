@testable import RampartPolicy
import Testing

/// The headers a sidecar sets before its policies read a request, as `authz check` gives them.
@Suite("headers the proxy sets")
struct ProxyHeaderTests {
    @Test("a request is given the headers a sidecar sets before its policies: x-request-id, x-forwarded-proto, x-forwarded-client-cert")
    func proxyHeaders() {
        let plain = AuthzRequest(
            transport: .http, source: .init(mtls: false), destination: .init(namespace: "ns1", labels: [:], port: 80),
            method: "GET", host: "b", path: "/",
            headers: ["x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/ns1/sa/admin", "x-forwarded-proto": "https"])
        let seen = plain.withProxyHeaders(requestID: "id-1")
        #expect(seen.headers["x-request-id"] == "id-1")
        // The client's x-forwarded-proto is kept, as a sidecar's Envoy keeps it; one is set when absent.
        #expect(seen.headers["x-forwarded-proto"] == "https")
        let unclaimed = AuthzRequest(
            transport: .http, source: .init(mtls: false), destination: .init(namespace: "ns1", labels: [:], port: 80),
            method: "GET", host: "b", path: "/")
        #expect(unclaimed.withProxyHeaders(requestID: "id-0").headers["x-forwarded-proto"] == "http")
        #expect(seen.headers["x-forwarded-client-cert"] == nil)
        // Over mTLS the peer's element is appended; an x-request-id the request has is kept.
        let mutual = AuthzRequest(
            transport: .http, source: .init(principal: "cluster.local/ns/ns1/sa/a"), destination: .init(namespace: "ns1", labels: [:], port: 80),
            method: "GET", host: "b", path: "/", headers: ["x-request-id": "given", "x-forwarded-client-cert": "URI=spiffe://x"])
        let forwarded = mutual.withProxyHeaders(requestID: "id-2")
        #expect(forwarded.headers["x-request-id"] == "given")
        #expect(forwarded.headers["x-forwarded-proto"] == "https")
        // The element names the destination (By, its default service account when the request file
        // gives no destination.principal), as the sidecar's own does.
        #expect(
            forwarded.headers["x-forwarded-client-cert"]
                == #"URI=spiffe://x,By=spiffe://cluster.local/ns/ns1/sa/default;Subject="";URI=spiffe://cluster.local/ns/ns1/sa/a"#)
        let named = AuthzRequest(
            transport: .http, source: .init(principal: "td/ns/ns1/sa/a"),
            destination: .init(namespace: "ns1", labels: [:], port: 80, principal: "td/ns/ns1/sa/reviews"), method: "GET", host: "b", path: "/")
        #expect(named.withProxyHeaders(requestID: "id", trustDomain: "td").headers["x-forwarded-client-cert"] == #"By=spiffe://td/ns/ns1/sa/reviews;Subject="";URI=spiffe://td/ns/ns1/sa/a"#)
        #expect(
            AuthzRequest(
                transport: .http, source: .init(principal: "td/ns/ns1/sa/a"), destination: .init(namespace: "ns1", labels: [:], port: 80),
                method: "GET", host: "b", path: "/"
            ).withProxyHeaders(requestID: "id", trustDomain: "td").headers["x-forwarded-client-cert"]?.hasPrefix("By=spiffe://td/ns/ns1/sa/default;") == true)
        // A policy on the forged header no longer matches a plaintext request.
        let engine = IstioValueSemanticsTests.engine(rules: "  - when: [{key: \"request.headers[x-forwarded-client-cert]\", values: [\"*sa/admin\"]}]")
        #expect(IstioValueSemanticsTests.decide(engine, plain) == .allow)
        #expect(IstioValueSemanticsTests.decide(engine, seen) == .deny)
        // TCP has no headers to set.
        let tcp = Fixture.tcp()
        #expect(tcp.withProxyHeaders(requestID: "id-3").headers.isEmpty)
    }

    static func seen(_ headers: [String: String], mtls: Bool = true) -> [String: String] {
        AuthzRequest(
            transport: .http, source: mtls ? .init(principal: "cluster.local/ns/ns1/sa/a") : .init(mtls: false),
            destination: .init(namespace: "ns1", labels: [:], port: 80), method: "GET", host: "b", path: "/", headers: headers
        ).withProxyHeaders(requestID: "id").headers
    }

    @Test(
        "a referer Envoy finds invalid is gone before the policies read the request: not a URL or relative reference, with user information or a fragment, or sent twice",
        arguments: [
            // Envoy's own vectors (test/common/http/utility_test.cc, isValidRefererValue).
            ("http://www.example.com", true), ("http://www.example.com/foo?bar=xyz", true), ("/resource.html", true),
            ("resource.html", true), ("foo/bar/resource.html", true), ("mal  formed/path/resource.html", false),
            ("htp:/www.malformed.com", false), ("http://www.example.com/?foo=bar#fragment", false), ("foo=bar#fragment", false),
            // And others: an absolute URL as http_parser reads one, else a relative reference.
            ("https://example.com:8443/a?b=c", true), ("http://[::1]:8080/x", true), ("/relative/path?x=1", true), ("a/b:c", true),
            ("", true), ("not a url", false), ("/a#fragment", false), ("https://user:pw@example.com/", false),
            ("https://example.com/a b", false), ("https://exa mple.com/", false), ("http://example.com:99999/", false),
            ("about:blank", false), ("mailto:someone", false), (":x", false), ("/x y", false), ("http:///path", false),
            // http_parser marks a fragment or user information only when it is not empty.
            ("http://h/p#", true), ("http://h/?#", true), ("http://@h/p", true),
        ])
    func referer(value: String, kept: Bool) {
        #expect(Self.seen(["referer": value])["referer"] == (kept ? value : nil), "\(value)")
        #expect(ConnectionManagerHeaders.isValidReferer(value) == kept)
    }

    @Test("a referer sent twice is gone, as Envoy removes it; a DENY on its presence then lets the request through")
    func repeatedReferer() {
        let twice = AuthzRequest(
            transport: .http, source: .init(principal: "cluster.local/ns/ns1/sa/a"), destination: .init(namespace: "ns1", labels: ["app": "b"], port: 80),
            method: "GET", host: "b", path: "/", headers: ["referer": "/a,/b"], repeatedHeaders: ["referer": ["/a", "/b"]])
        #expect(twice.withProxyHeaders(requestID: "id").headers["referer"] == nil)
        let engine = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - when: [{key: \"request.headers[referer]\", values: [\"*\"]}]"))
        #expect(IstioValueSemanticsTests.decide(engine, twice) == .deny, "the request as written carries it")
        #expect(IstioValueSemanticsTests.decide(engine, twice.withProxyHeaders(requestID: "id")) == .allow)
    }

    @Test("hop-by-hop headers are gone before the policies read the request, unless it asks for an upgrade; te only as trailers")
    func hopByHop() {
        let seen = Self.seen([
            "connection": "keep-alive", "keep-alive": "timeout=5", "proxy-connection": "keep-alive", "transfer-encoding": "chunked",
            "upgrade": "h2c", "te": "gzip", "x-kept": "1",
        ])
        for name in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"] {
            #expect(seen[name] == nil, "\(name)")
        }
        #expect(seen["x-kept"] == "1")
        #expect(Self.seen(["te": "gzip, trailers;q=0.5"])["te"] == "trailers")
        let upgrade = Self.seen(["connection": "keep-alive, Upgrade", "upgrade": "websocket", "keep-alive": "1"])
        #expect(upgrade["connection"] == "keep-alive, Upgrade" && upgrade["upgrade"] == "websocket" && upgrade["keep-alive"] == nil)
        // Without an upgrade header, `connection: upgrade` asks for nothing and is removed.
        #expect(Self.seen(["connection": "upgrade"])["connection"] == nil)

        // A DENY on a hop-by-hop header's presence no longer sees it, as Envoy's RBAC does not.
        let engine = Fixture.engine(Fixture.policy("p", action: "DENY", rules: "  - when: [{key: \"request.headers[keep-alive]\", values: [\"*\"]}]"))
        let request = AuthzRequest(
            transport: .http, source: .init(principal: "cluster.local/ns/ns1/sa/a"), destination: .init(namespace: "ns1", labels: ["app": "b"], port: 80),
            method: "GET", host: "b", path: "/", headers: ["keep-alive": "timeout=5"])
        #expect(IstioValueSemanticsTests.decide(engine, request) == .deny)
        #expect(IstioValueSemanticsTests.decide(engine, request.withProxyHeaders(requestID: "id")) == .allow)
    }

    @Test("header values and the host lose the spaces and tabs around them before the policies read them")
    func paddedValues() {
        #expect(FieldValue.trimmed(" \tyes \t") == "yes")
        #expect(FieldValue.trimmed("a b") == "a b")
        #expect(FieldValue.trimmed(" \t ") == "")
        #expect(!FieldValue.isPadded("") && !FieldValue.isPadded("a b") && FieldValue.isPadded("a\t"))
        let engine = Fixture.engine(
            Fixture.policy("p", action: "DENY", rules: """
                  - when: [{key: "request.headers[x-block]", values: ["yes"]}]
                  - to: [{operation: {hosts: ["forbidden.example"]}}]
                """))
        func request(host: String = "b", headers: [String: String] = [:], repeated: [String: [String]] = [:]) -> AuthzRequest {
            AuthzRequest(
                transport: .http, source: .init(principal: "cluster.local/ns/ns1/sa/a"),
                destination: .init(namespace: "ns1", labels: ["app": "b"], port: 80), method: "GET", host: host, path: "/",
                headers: headers, repeatedHeaders: repeated
            ).withProxyHeaders(requestID: "id")
        }
        for padded in ["yes ", "yes\t", " yes", "yes \t "] {
            #expect(request(headers: ["x-block": padded]).headers["x-block"] == "yes")
            #expect(IstioValueSemanticsTests.decide(engine, request(headers: ["x-block": padded])) == .deny, "\(padded)")
        }
        #expect(IstioValueSemanticsTests.decide(engine, request(headers: ["x-block": "no "])) == .allow)
        #expect(IstioValueSemanticsTests.decide(engine, request(host: "forbidden.example ")) == .deny)
        let both = request(headers: ["x-tag": "a ,b"], repeated: ["x-tag": ["a ", " b"]])
        #expect(both.repeatedHeaders["x-tag"] == ["a", "b"])
    }

    @Test("the proxy finds every header name the connection manager treats, in any case, and no other")
    func quickFilter() {
        let treated = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "x-envoy-internal", "referer"]
            + ConnectionManagerHeaders.internalOnly.sorted()
        for name in treated {
            for spelling in [name, name.uppercased(), name.prefix(1).uppercased() + name.dropFirst()] {
                #expect(ConnectionManagerHeaders.mayTreat(spelling.lowercased()), "\(spelling)")
                #expect(ConnectionManagerHeaders.treatedName(spelling) == spelling.lowercased(), "\(spelling)")
            }
        }
        for name in ["accept", "x-request-id", "x-forwarded-for", "authorization", "user-agent", "x-envoy-attempt-count"] {
            #expect(!ConnectionManagerHeaders.mayTreat(name), "\(name)")
        }
        for name in ["x-request-id", "authorization", "user-agent", "x-envoy-attempt-count", "X-Envoy-Peer-Metadata", "t", "tee", "refere", "connections"] {
            #expect(ConnectionManagerHeaders.treatedName(name) == nil, "\(name)")
        }
    }

    @Test("x-envoy-internal is always removed; Envoy's request-control headers only an internal request keeps")
    func envoyInternalHeaders() {
        let control = ["x-envoy-retry-on": "5xx", "x-envoy-upstream-rq-timeout-ms": "1", "x-envoy-original-url": "http://a/", "x-envoy-internal": "true",
            "x-envoy-decorator-operation": "op"]
        let external = Self.seen(control)
        #expect(external["x-envoy-retry-on"] == nil && external["x-envoy-upstream-rq-timeout-ms"] == nil && external["x-envoy-original-url"] == nil)
        #expect(external["x-envoy-internal"] == nil)
        // Only an edge proxy removes the decorator operation.
        #expect(external["x-envoy-decorator-operation"] == "op")
        for (forwardedFor, isInternal) in [
            ("10.1.2.3", true), ("172.20.0.1", true), ("192.168.1.1", true), ("127.0.0.1", true), ("fd00::1", true), ("::1", true),
            ("8.8.8.8", false), ("172.32.0.1", false), ("10.0.0.1, 10.0.0.2", false), ("fe80::1", false), ("bogus", false),
        ] {
            var headers = control
            headers["x-forwarded-for"] = forwardedFor
            let seen = Self.seen(headers)
            #expect((seen["x-envoy-retry-on"] == "5xx") == isInternal, "\(forwardedFor)")
            #expect(seen["x-envoy-internal"] == nil, "\(forwardedFor)")
        }
    }
}
