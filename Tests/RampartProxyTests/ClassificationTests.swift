import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
@testable import RampartProxy
import Testing

@Suite("Protocol sniffing")
struct ClassificationTests {
    @Test("a TLS ClientHello is recognised from its record header")
    func tls() {
        #expect(ProtocolClassifier.classify([0x16, 0x03, 0x01, 0x00, 0xF4]) == .tls)
        #expect(ProtocolClassifier.classify([0x16]) == nil)
        #expect(ProtocolClassifier.classify([0x16, 0x01]) == .tcp)
    }

    @Test("after TLS is terminated, a 0x16 byte is just TCP")
    func noNestedTLS() {
        #expect(ProtocolClassifier.classify([0x16, 0x03, 0x01], tlsAllowed: false) == .tcp)
    }

    @Test("HTTP/1 is a whole request line, whatever its method, as Envoy's HTTP inspector reads it")
    func http1() {
        #expect(ProtocolClassifier.classify(Array("GET / HTTP/1.1\r\n".utf8)) == .http1)
        #expect(ProtocolClassifier.classify(Array("OPTIONS * HTTP/1.1".utf8)) == .http1)
        // Methods beyond the usual nine, lower case, empty lines first, an absolute-form target.
        for line in ["PROPFIND /d HTTP/1.1", "PURGE /cache HTTP/1.1", "get / HTTP/1.0", "\r\nGET / HTTP/1.1",
                     "GET http://app.example/admin HTTP/1.1"] {
            #expect(ProtocolClassifier.classify(Array(line.utf8)) == .http1, "\(line)")
        }
        // Not yet decided: the line is not complete.
        for start in ["POS", "GETX", "GET /a", "GET /a HTTP/"] {
            #expect(ProtocolClassifier.classify(Array(start.utf8)) == nil, "\(start)")
        }
        // A line protocol that starts with a word is not HTTP.
        for line in ["SET key value\r\n", "GETX\r\n", "HELLO world 3\r\n", "GET / SMTP/1.0\r\n"] {
            #expect(ProtocolClassifier.classify(Array(line.utf8)) == .tcp, "\(line)")
        }
    }

    @Test("the HTTP/2 preface is recognised only when whole")
    func http2() {
        #expect(ProtocolClassifier.classify(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)) == .http2)
        #expect(ProtocolClassifier.classify(Array("PRI * HTTP/2".utf8)) == nil)
    }

    @Test("anything else is opaque TCP")
    func tcp() {
        #expect(ProtocolClassifier.classify([0x00, 0x01]) == .tcp)
        #expect(ProtocolClassifier.classify(Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)) == .tcp)
        #expect(ProtocolClassifier.classify([UInt8]()) == nil)
    }

    @Test("the sniffer holds bytes until it can decide, then replays them to the pipeline it built")
    func snifferReplays() throws {
        let channel = EmbeddedChannel()
        var decided: SniffedProtocol?
        let sniffer = ProtocolSniffer(
            tlsAllowed: true,
            configure: { _, sniffed in decided = sniffed },
            failed: { Issue.record("unexpected failure: \($0)") }
        )
        try channel.pipeline.syncOperations.addHandler(sniffer)
        try channel.writeInbound(ByteBuffer(string: "PO"))
        #expect(decided == nil)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        try channel.writeInbound(ByteBuffer(string: "ST /x HTTP/1.1\r\n"))
        #expect(decided == .http1)
        let replayed = try channel.readInbound(as: ByteBuffer.self)
        #expect(replayed.map { String(buffer: $0) } == "POST /x HTTP/1.1\r\n")
        #expect(try channel.finish().isClean)
    }

    @Test("a peer that sends nothing before the timeout is treated as TCP")
    func snifferTimeout() throws {
        let channel = EmbeddedChannel()
        var decided: SniffedProtocol?
        try channel.pipeline.syncOperations.addHandler(
            ProtocolSniffer(tlsAllowed: true, timeout: .seconds(1), configure: { _, sniffed in decided = sniffed }, failed: { _ in })
        )
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(decided == .tcp)
        _ = try channel.finish()
    }
}

@Suite("Outbound targets and service names")
struct ResolutionTests {
    let registry = ServiceRegistry(services: [
        MeshService(name: "reviews", namespace: "bookinfo", port: 9080, endpoints: [ServiceEndpoint(host: "127.0.0.1", port: 1, spiffeID: "spiffe://cluster.local/ns/bookinfo/sa/reviews", workload: "reviews-v1")]),
        MeshService(name: "ratings", namespace: "other", port: 9080, endpoints: []),
        MeshService(name: "ratings", namespace: "other", port: 9000, endpoints: []),
    ])

    @Test("a short name resolves in the client's namespace, longer names anywhere")
    func names() {
        #expect(registry.resolve(host: "reviews", clientNamespace: "bookinfo")?.name == "reviews")
        #expect(registry.resolve(host: "reviews", clientNamespace: "other") == nil)
        #expect(registry.resolve(host: "reviews.bookinfo", clientNamespace: "other")?.namespace == "bookinfo")
        #expect(registry.resolve(host: "reviews.bookinfo.svc", clientNamespace: "other") != nil)
        #expect(registry.resolve(host: "Reviews.Bookinfo.svc.cluster.local.", clientNamespace: "other") != nil)
        #expect(registry.resolve(host: "reviews.bookinfo.svc.example.org", clientNamespace: "other") == nil)
        #expect(registry.resolve(host: "ratings.other.svc.cluster.local", clientNamespace: "bookinfo")?.port == 9000)
        // Names of other shapes resolve to nothing: a third label that is not `svc`, a partial or
        // longer domain, a label too many in front, an empty label.
        for host in [
            "reviews.bookinfo.cluster", "reviews.bookinfo.svc.cluster", "reviews.bookinfo.svc.cluster.local.x",
            "v1.reviews.bookinfo.svc.cluster.local", "reviews..svc.cluster.local", ".reviews", "",
        ] {
            #expect(registry.resolve(host: host, clientNamespace: "bookinfo") == nil, "\(host)")
        }
    }

    @Test("a service's fully qualified name in any domain, and an endpoint's address")
    func namesAndAddresses() throws {
        let reviews = try #require(registry.resolve(host: "reviews.bookinfo", clientNamespace: "other"))
        #expect(reviews.hostname(domain: "cluster.local") == "reviews.bookinfo.svc.cluster.local")
        #expect(reviews.hostname(domain: "example.org") == "reviews.bookinfo.svc.example.org")
        #expect(reviews.clusterName(domain: "cluster.local") == "outbound|9080||reviews.bookinfo.svc.cluster.local")
        #expect(reviews.clusterName(domain: "example.org") == "outbound|9080||reviews.bookinfo.svc.example.org")
        #expect(reviews.serverName(domain: "cluster.local") == "outbound_.9080_._.reviews.bookinfo.svc.cluster.local")
        #expect(reviews.serverName(domain: "example.org") == "outbound_.9080_._.reviews.bookinfo.svc.example.org")
        #expect(reviews.endpoints.first?.address == "127.0.0.1:1")
        #expect(ServiceEndpoint(host: "::1", port: 8080, spiffeID: "x", workload: "w").address == "[::1]:8080")
        #expect(EndpointAddress.split(EndpointAddress.join("::1", 15006))! == ("::1", 15006))
    }

    @Test("a service served on several ports keeps every port, lowest first")
    func multiplePorts() {
        #expect(registry.resolveAll(host: "ratings.other", clientNamespace: "bookinfo").map(\.port) == [9000, 9080])
        #expect(registry.resolveAll(host: "nosuch", clientNamespace: "bookinfo").isEmpty)
    }

    @Test("workloads are found by the identity they present")
    func workloads() {
        #expect(registry.workloads["spiffe://cluster.local/ns/bookinfo/sa/reviews"]?.workload == "reviews-v1")
    }

    @Test("an absolute-form target (http_proxy) gives host, port and origin-form path")
    func absoluteForm() throws {
        let target = try OutboundTarget(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://reviews.bookinfo:9080/r/1?x=2"))
        #expect(target.host == "reviews.bookinfo")
        #expect(target.port == 9080)
        #expect(target.path == "/r/1?x=2")
        #expect(target.authority == "reviews.bookinfo:9080")
        let bare = try OutboundTarget(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://reviews"))
        #expect(bare.path == "/")
        #expect(bare.port == nil)
        // The scheme in any case; a host merely starting with "http" is not a scheme.
        let upper = try OutboundTarget(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "HTTP://Ratings:9080?q=1"))
        #expect(upper.host == "ratings")
        #expect(upper.path == "/?q=1")
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/http://not-a-target")
        head.headers.add(name: "host", value: "details")
        let origin = try OutboundTarget(head: head)
        #expect(origin.host == "details")
        #expect(origin.path == "/http://not-a-target")
        #expect(OutboundTarget.hasScheme("https://", "HtTpS://x"))
        #expect(!OutboundTarget.hasScheme("https://", "http://x"))
        #expect(!OutboundTarget.hasScheme("http://", "http:/"))
    }

    @Test("an origin-form target takes its destination from the Host header")
    func hostHeader() throws {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x")
        head.headers.add(name: "host", value: "Reviews:9080")
        let target = try OutboundTarget(head: head)
        #expect(target.host == "reviews")
        #expect(target.port == 9080)
        // Two Host headers are refused, as the inbound side refuses them, rather than routed on the first.
        head.headers.add(name: "Host", value: "ratings")
        #expect(throws: ProxyError.self) { try OutboundTarget(head: head) }
    }

    @Test("https, CONNECT, a missing Host and a bad port are refused with what to do")
    func refusals() {
        #expect(throws: ProxyError.self) { try OutboundTarget(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "https://reviews/")) }
        #expect(throws: ProxyError.self) { try OutboundTarget(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "HTTPS://reviews/")) }
        #expect(throws: ProxyError.self) { try OutboundTarget(head: HTTPRequestHead(version: .http1_1, method: .CONNECT, uri: "reviews:443")) }
        #expect(throws: ProxyError.self) { try OutboundTarget(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")) }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        head.headers.add(name: "host", value: "reviews:99999")
        #expect(throws: ProxyError.self) { try OutboundTarget(head: head) }
    }

    @Test("round robin cycles through a service's endpoints")
    func roundRobin() {
        let balancer = RoundRobin()
        let picks = (0..<6).compactMap { _ in balancer.pick(["a", "b", "c"], service: "s") }
        #expect(picks == ["a", "b", "c", "a", "b", "c"])
        #expect(balancer.pick([String](), service: "s") == nil)
    }
}

@Suite("Headers, serials and addresses")
struct HeaderTests {
    @Test("hop-by-hop headers, and those the connection header lists, are not forwarded")
    func hopByHop() {
        var headers = HTTPHeaders([("connection", "close, x-private"), ("x-private", "1"), ("keep-alive", "5"), ("x-kept", "yes"), ("transfer-encoding", "chunked")])
        HopByHop.strip(&headers)
        #expect(headers.map(\.name) == ["x-kept"])
    }

    @Test("hop-by-hop names match in any case; te: trailers survives; other headers keep their order")
    func hopByHopCaseAndTrailers() {
        var headers = HTTPHeaders([
            ("Connection", "Keep-Alive, X-Private"), ("X-PRIVATE", "1"), ("Keep-Alive", "5"), ("a", "1"), ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("b", "2"), ("Proxy-Authorization", "Basic x"), ("connectionx", "kept"),
        ])
        HopByHop.strip(&headers)
        #expect(headers.map(\.name) == ["a", "b", "connectionx", "te"])
        #expect(headers["te"] == ["trailers"])

        var clean = HTTPHeaders([("host", "b"), ("x-request-id", "1")])
        HopByHop.strip(&clean)
        #expect(clean.map(\.name) == ["host", "x-request-id"])

        // The usual single values remove the connection header and, for keep-alive, a keep-alive header.
        var usual = HTTPHeaders([("Connection", " Keep-Alive"), ("Keep-Alive", "timeout=5"), ("close", "kept: not a hop-by-hop name"), ("host", "b")])
        HopByHop.strip(&usual)
        #expect(usual.map(\.name) == ["close", "host"])
        #expect(HopByHop.connectionValue("\tclose ") == .close && HopByHop.connectionValue("Keep-Alive") == .keepAlive)
        #expect(HopByHop.connectionValue("close, x-one") == nil && HopByHop.connectionValue("") == nil)

        var teOnly = HTTPHeaders([("te", "gzip")])
        HopByHop.strip(&teOnly)
        #expect(teOnly.isEmpty)
    }

    @Test("the connection header's options are split on commas, trimmed of spaces and tabs, and matched in any case")
    func connectionOptions() {
        #expect(HopByHop.lowercasedTokens(" Keep-Alive ,\tX-Private\t,, upgrade") == ["keep-alive", "x-private", "upgrade"])
        #expect(HopByHop.lowercasedTokens("") == [])
        #expect(HopByHop.lowercasedTokens(" , ") == [])

        var headers = HTTPHeaders([("Connection", "\tX-One ,x-TWO"), ("x-one", "1"), ("X-Two", "2"), ("x-three", "3"), ("TE", "gzip, Trailers")])
        HopByHop.strip(&headers)
        #expect(headers.map(\.name) == ["x-three", "te"])
        #expect(headers["te"] == ["trailers"])

        for name in ["Proxy-Connection", "TRAILER", "proxy-authenticate", "Upgrade"] {
            #expect(HopByHop.isHopByHop(name), "\(name)")
        }
        for name in ["t", "tex", "trailers", "connection-x", "x-forwarded-proto", ""] {
            #expect(!HopByHop.isHopByHop(name), "\(name)")
        }
    }

    @Test("keep-alive is read as NIO reads it: HTTP/1.1 unless close, HTTP/1.0 only with keep-alive; close is found in any connection header")
    func keepAlive() {
        let cases: [([(String, String)], HTTPVersion, Bool)] = [
            ([], .http1_1, true),
            ([], .http1_0, false),
            ([("Connection", "close")], .http1_1, false),
            ([("connection", "Keep-Alive")], .http1_0, true),
            ([("Connection", "upgrade, CLOSE")], .http1_1, false),
            ([("connection", "x-private"), ("Connection", "keep-alive")], .http1_0, true),
            ([("connection", "keep-alive"), ("connection", "close")], .http1_1, false),
            ([("connectionx", "close"), ("x-connection", "close")], .http1_1, true),
            ([("Connection", " \tClOsE \t")], .http1_1, false),
            ([("Connection", "\tKEEP-ALIVE ")], .http1_0, true),
            ([("Connection", "keep-alive-ish")], .http1_0, false),
            ([("Connection", "clos")], .http1_1, true),
        ]
        for (fields, version, expected) in cases {
            var head = HTTPRequestHead(version: version, method: .GET, uri: "/", headers: HTTPHeaders(fields))
            // An edit, as forwarding makes, so NIO answers from the headers rather than the parser.
            head.headers.replaceOrAdd(name: "x-forwarded-proto", value: "https")
            #expect(HopByHop.isKeepAlive(head.headers, version: version) == expected, "\(fields) \(version)")
            #expect(head.isKeepAlive == expected, "NIO: \(fields) \(version)")
            let saysClose = fields.contains { $0.0.lowercased() == "connection" && $0.1.lowercased().contains("close") }
            #expect(HopByHop.asksToClose(head.headers) == saysClose, "close: \(fields)")
        }
    }

    @Test("x-request-id is kept when present and generated when absent")
    func requestID() {
        var headers = HTTPHeaders([("x-request-id", "abc")])
        #expect(RequestIDs.ensure(&headers) == "abc")
        var empty = HTTPHeaders()
        let made = RequestIDs.ensure(&empty)
        #expect(made.count == 36)
        #expect(empty.first(name: "x-request-id") == made)
    }

    @Test("generated request IDs are distinct version 4 UUIDs, across many refills of the random pool")
    func generatedIDsAreUUIDv4() throws {
        var seen = Set<String>()
        for _ in 0..<2000 {
            let id = RequestIDs.randomUUID()
            let parsed = try #require(UUID(uuidString: id), "\(id) is not a UUID")
            #expect(parsed.uuidString.lowercased() == id)
            let bytes = withUnsafeBytes(of: parsed.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4)
            #expect(bytes[8] & 0xC0 == 0x80)
            seen.insert(id)
        }
        #expect(seen.count == 2000)
    }

    @Test("x-forwarded-client-cert appends this hop's element")
    func xfcc() throws {
        let peer = VerifiedPeer(spiffeID: try .init(parsing: "spiffe://cluster.local/ns/a/sa/b"), serial: "1", certificateHash: "ab")
        let element = ForwardedClientCert.element(by: "spiffe://cluster.local/ns/c/sa/d", peer: peer)
        #expect(element == "By=spiffe://cluster.local/ns/c/sa/d;Hash=ab;Subject=\"\";URI=spiffe://cluster.local/ns/a/sa/b")
        #expect(ForwardedClientCert.appending(element, to: "By=x") == "By=x," + element)
        // A connection makes its element once, and again when this side's identity changes.
        let info = ConnectionInfo(remote: nil, local: nil, tls: true, peer: peer, mode: .strict)
        #expect(info.forwardedClientCertElement(by: "spiffe://cluster.local/ns/c/sa/d") == element)
        #expect(info.forwardedClientCertElement(by: "spiffe://cluster.local/ns/c/sa/d") == element)
        #expect(info.forwardedClientCertElement(by: "spiffe://other.td/ns/c/sa/d")?.hasPrefix("By=spiffe://other.td/ns/c/sa/d;Hash=ab;") == true)
        #expect(ConnectionInfo(remote: nil, local: nil, tls: false, peer: nil, mode: .permissive).forwardedClientCertElement(by: "x") == nil)
    }

    @Test("serials compare in any of the CA's spellings")
    func serials() {
        let list = RevocationList(serials: ["0A:1B", "0x00ff"])
        #expect(list.contains(serial: "a1b"))
        #expect(list.contains(serial: "FF"))
        #expect(!list.contains(serial: "a1c"))
    }

    @Test("endpoint addresses split into host and port, IPv6 included")
    func addresses() {
        #expect(EndpointAddress.split("127.0.0.1:15006")! == ("127.0.0.1", 15006))
        #expect(EndpointAddress.split("[::1]:80")! == ("::1", 80))
        #expect(EndpointAddress.split("127.0.0.1") == nil)
        #expect(EndpointAddress.split("::1:80") == nil)
        #expect(EndpointAddress.split("h:99999") == nil)
    }

    @Test("service flags parse NAME:PORT and refuse anything else")
    func servicePorts() throws {
        #expect(try ServicePort(parsing: "reviews:9080") == ServicePort(name: "reviews", port: 9080))
        for bad in ["reviews", "Reviews:80", "reviews:0", "reviews:x", ":80"] {
            #expect(throws: ProxyError.self) { try ServicePort(parsing: bad) }
        }
    }

    @Test("reconnect back-off doubles from the initial wait, capped, with bounded jitter")
    func backoff() {
        for failures in 1...12 {
            let wait = ConfigStream.backoff(failures: failures, initial: .milliseconds(200), max: .seconds(10))
            let base = min(Duration.milliseconds(200) * (1 << (failures - 1)), .seconds(10))
            #expect(wait >= base)
            #expect(wait <= base * 1.25)
        }
    }
}

@Suite("Metric series")
struct MetricSeriesTests {
    private func record(code: Int, path: String, principal: String? = "cluster.local/ns/a/sa/a") -> RequestRecord {
        var record = RequestRecord(reporter: .destination, startTime: Date(), protocolName: "HTTP/1.1")
        record.responseCode = code
        record.path = path
        record.duration = Double(path.count)
        record.sourcePrincipal = principal
        record.destinationWorkload = "b"
        return record
    }

    @Test("a series is made once per label set; fields outside Istio's labels do not make new ones")
    func oneSeriesPerLabelSet() {
        let cache = SeriesCache<ProxyMetrics.SeriesKey, Int>()
        var made = 0
        func series(_ record: RequestRecord) -> Int {
            cache.get(ProxyMetrics.SeriesKey(record)) {
                made += 1
                return made
            }
        }
        let first = series(record(code: 200, path: "/a"))
        #expect(series(record(code: 200, path: "/b")) == first)
        let denied = series(record(code: 403, path: "/a"))
        #expect(denied != first)
        let other = series(record(code: 200, path: "/a", principal: "cluster.local/ns/c/sa/c"))
        #expect(other != first && other != denied)
        #expect(made == 3)
    }

    @Test("records with the same key have the same labels")
    func keyDeterminesLabels() {
        let a = record(code: 503, path: "/x")
        let b = record(code: 503, path: "/y")
        #expect(ProxyMetrics.SeriesKey(a) == ProxyMetrics.SeriesKey(b))
        #expect(ProxyMetrics.labels(a).map { "\($0.0)=\($0.1)" } == ProxyMetrics.labels(b).map { "\($0.0)=\($0.1)" })
        #expect(ProxyMetrics.labels(a).contains { $0 == ("response_code", "503") })
        #expect(ProxyMetrics.labels(a).contains { $0 == ("source_principal", "spiffe://cluster.local/ns/a/sa/a") })
    }

    @Test("gRPC calls are labelled grpc with their status, and a different status is another series")
    func grpcLabels() {
        var call = record(code: 200, path: "/echo.Echo/Say")
        call.isGRPC = true
        call.grpcStatus = "7"
        let labels = Dictionary(ProxyMetrics.labels(call), uniquingKeysWith: { first, _ in first })
        #expect(labels["request_protocol"] == "grpc" && labels["grpc_response_status"] == "7")
        var ok = call
        ok.grpcStatus = "0"
        #expect(ProxyMetrics.SeriesKey(ok) != ProxyMetrics.SeriesKey(call))
        let plain = Dictionary(ProxyMetrics.labels(record(code: 200, path: "/")), uniquingKeysWith: { first, _ in first })
        #expect(plain["request_protocol"] == "http" && plain["grpc_response_status"] == "")
    }

    @Test("canonical service and revision follow Istio's label order, then the workload name and latest")
    func canonicalService() {
        #expect(CanonicalService.name(labels: ["service.istio.io/canonical-name": "c", "app.kubernetes.io/name": "k", "app": "a"], workload: "w") == "c")
        #expect(CanonicalService.name(labels: ["app.kubernetes.io/name": "k", "app": "a"], workload: "w") == "k")
        #expect(CanonicalService.name(labels: ["app": "a"], workload: "w") == "a")
        #expect(CanonicalService.name(labels: [:], workload: "w") == "w")
        #expect(CanonicalService.revision(labels: ["service.istio.io/canonical-revision": "r", "version": "v1"]) == "r")
        #expect(CanonicalService.revision(labels: ["app.kubernetes.io/version": "2", "version": "v1"]) == "2")
        #expect(CanonicalService.revision(labels: ["version": "v1"]) == "v1")
        #expect(CanonicalService.revision(labels: [:]) == "latest")
        var denied = record(code: 403, path: "/")
        denied.destination(labels: ["app": "reviews", "version": "v2"], workload: "reviews-v2")
        let labels = Dictionary(ProxyMetrics.labels(denied), uniquingKeysWith: { first, _ in first })
        #expect(labels["destination_canonical_service"] == "reviews" && labels["destination_canonical_revision"] == "v2")
    }

    @Test("a denial's details name the rule as Istio names it to Envoy's RBAC filter")
    func rbacDetails() {
        #expect(RequestRecord.rbacDetails("shop/deny-x", rule: 2) == "rbac_access_denied_matched_policy[ns[shop]-policy[deny-x]-rule[2]]")
        #expect(RequestRecord.rbacDetails(nil, rule: nil) == "rbac_access_denied_matched_policy[none]")
    }
}

@Suite("Event loop executor")
struct EventLoopExecutorTests {
    @Test("a task that prefers an event loop's executor runs there, before and after it awaits")
    func runsOnItsLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loop = group.next()
        let other = group.next()
        let observed = await Task(executorPreference: EventLoopExecutor(loop)) { () async -> [Bool] in
            var seen = [loop.inEventLoop]
            // A future completed on another loop resumes the task on its own loop again.
            let value = try? await other.submit { 7 }.get()
            seen.append(loop.inEventLoop && value == 7)
            await Task.yield()
            seen.append(loop.inEventLoop)
            return seen
        }.value
        #expect(observed == [true, true, true])
        try await group.shutdownGracefully()
    }
}

@Suite("Setting a header")
struct HeaderSetTests {
    @Test("set adds a missing header, leaves one that already says so, and replaces the rest whatever their case or number")
    func set() {
        var headers = HTTPHeaders([("Host", "a"), ("x-one", "1")])
        headers.set(name: "host", value: "a")
        #expect(Array(headers.map(\.name)) == ["Host", "x-one"], "a header that already said so was moved or rewritten")
        headers.set(name: "host", value: "b")
        #expect(headers["host"] == ["b"])
        headers.set(name: "content-length", value: "3")
        #expect(headers["content-length"] == ["3"])
        headers.add(name: "Content-Length", value: "3")
        headers.set(name: "content-length", value: "3")
        #expect(headers["content-length"] == ["3"], "two fields were not made one")
        headers.set(name: "x-ONE", value: "2")
        #expect(headers["x-one"] == ["2"])
        #expect(headers.count == 3)
    }
}
