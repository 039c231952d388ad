import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The outbound listener (Istio's 15001): applications send plain HTTP to it, as to an HTTP
/// proxy or with the Host header of the service they want. It resolves the service from the
/// registry, picks an endpoint round robin, originates mTLS with the workload's certificate and
/// checks that the server presents an identity the registry expects for that service.
public final class OutboundListener: Service, Sendable {
    private let host: String
    private let port: Int
    private let context: ProxyContext
    private let balancer = RoundRobin()
    private let onBound: @Sendable (Int) -> Void
    /// Where the listener is bound, once it is: requests addressed there are refused, not looped.
    private let own: OwnAddress

    /// Creates the listener; `onBound` receives the bound port.
    public init(host: String, port: Int, context: ProxyContext, onBound: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.context = context
        self.onBound = onBound
        own = OwnAddress(host: host)
    }

    /// Accepts connections until shutdown.
    public func run() async throws {
        let context = self.context
        let balancer = self.balancer
        let own = self.own
        let onBound = self.onBound
        try await Listening.serve(
            host: host, port: port, name: "outbound", logger: context.logger,
            onBound: { port in
                own.port.store(port, ordering: .relaxed)
                onBound(port)
            },
            negotiate: { channel in try Self.negotiate(channel, maxBodyBytes: context.maxBodyBytes, timeouts: context.idleTimeouts) },
            handle: { connection in
                switch connection {
                case .http1(let channel, let remote):
                    // The client's address is spelled once per connection.
                    let source = OutboundHTTP.describe(remote)
                    let outbound = OutboundHTTP(
                        context: context, balancer: balancer, own: own, local: OutboundHTTP.describe(channel.channel.localAddress))
                    let loop = channel.channel.eventLoop
                    await HTTPServing.serve(
                        channel,
                        respond: { request in
                            await Listening.answer(request, on: loop) { request, loop, answer in
                                outbound.handle(request, source: source, on: loop, answer: answer)
                            }
                        },
                        refused: { head, response, details, partial in outbound.refused(head, response, details: details, partial: partial, source: source) })
                case .http2(let streams, let channel, let remote):
                    let source = OutboundHTTP.describe(remote)
                    let outbound = OutboundHTTP(context: context, balancer: balancer, own: own, local: OutboundHTTP.describe(channel.localAddress))
                    await Listening.serveStreams(
                        streams, connection: channel, logger: context.logger,
                        respond: { request in
                            await Listening.answer(request, on: channel.eventLoop) { request, loop, answer in
                                outbound.handle(request, source: source, on: loop, answer: answer)
                            }
                        },
                        refused: { head, response, details, partial in outbound.refused(head, response, details: details, partial: partial, source: source) })
                }
            }
        )
    }
}

extension OutboundListener {
    /// A connection from an application: HTTP/1.1, or HTTP/2 with prior knowledge (gRPC clients).
    enum Connection: Sendable {
        case http1(HTTPRequestStream, SocketAddress?)
        case http2(Listening.HTTP2Streams, any Channel, SocketAddress?)
    }

    static func negotiate(_ channel: any Channel, maxBodyBytes: Int, timeouts: IdleTimeouts = .envoy) throws -> EventLoopFuture<Connection> {
        let promise = channel.eventLoop.makePromise(of: Connection.self)
        let sniffer = ProtocolSniffer(
            tlsAllowed: false,
            configure: { channel, sniffed in
                switch sniffed {
                case .http2:
                    promise.succeed(.http2(try Listening.configureHTTP2Server(channel, maxBodyBytes: maxBodyBytes, timeouts: timeouts), channel, channel.remoteAddress))
                case .http1, .tcp, .tls:
                    // Anything that is not HTTP/2 is parsed as HTTP/1.1; garbage gets a 400 from the codec.
                    promise.succeed(.http1(try Listening.configureHTTP1Server(channel, maxBodyBytes: maxBodyBytes, timeouts: timeouts), channel.remoteAddress))
                }
            },
            failed: { promise.fail($0) }
        )
        try channel.pipeline.syncOperations.addHandler(sniffer)
        return promise.futureResult
    }
}

/// One outbound request: resolve, balance, originate mTLS, forward.
struct OutboundHTTP: Sendable {
    let context: ProxyContext
    let balancer: RoundRobin
    let own: OwnAddress
    /// `host:port` of the listener the connection came to (the access log's
    /// `downstream_local_address`).
    var local: String? = nil

    /// `host:port` of a client, as the access log shows it.
    static func describe(_ remote: SocketAddress?) -> String? {
        remote.map { EndpointAddress.join($0.ipAddress ?? "?", $0.port ?? 0) }
    }

    /// Routes one request from the application at `source`, records it in the metrics and the
    /// access log, and calls `answer` with the response. Called by the connection's task (see
    /// ``Listening/answer(_:on:_:)``), which runs on `loop`, the connection's event loop.
    func handle(_ request: BufferedRequest, source: String?, on loop: any EventLoop, answer: @escaping Listening.Answer) {
        let start = request.arrived ?? Date()
        var record = RequestRecord(reporter: .source, startTime: start, protocolName: request.protocolName)
        record.isGRPC = request.isGRPC
        record.countMessages(of: request)
        let context = self.context
        route(request, source: source, record: record, on: loop) { response, record in
            if let relay = response.relay {
                // A call relayed as it arrives is reported when it ends (see `StreamRelay`).
                relay.attach(record: record) { record, response in context.finish(&record, response: response, start: start) }
                answer(response)
                return
            }
            var record = record
            var response = response
            ResponseStamp.apply(&response, server: ResponseStamp.outboundServer, serviceTime: record.upstreamServiceTime)
            // Gone before the answer: seen by the connection's close, or by an upload cut short.
            if request.cancellation?.isCancelled == true { record.downstreamDisconnected = true }
            context.finish(&record, response: response, start: start)
            answer(response)
        }
    }

    /// What receives a response and the record of the exchange that made it.
    typealias Routed = @Sendable (BufferedResponse, RequestRecord) -> Void

    /// Records a request answered before it was routed (see `HTTPServing.Refused`) in the metrics
    /// and the access log, and stamps its answer as every answer of this side is stamped.
    func refused(
        _ head: HTTPRequestHead?, _ response: BufferedResponse, details: String, partial: PartialRequest? = nil, source: String?
    ) -> BufferedResponse {
        let start = partial?.started ?? Date()
        var request = BufferedRequest(head: head ?? HTTPRequestHead(version: .http1_1, method: .GET, uri: ""))
        var record = RequestRecord(reporter: .source, startTime: start, protocolName: request.protocolName)
        record.isGRPC = request.isGRPC
        describe(&record, &request.head, source: source)
        if let head {
            record.path = head.uri
            record.authority = head.headers.first(name: "host")
        } else {
            record.requestID = nil
            InboundHTTP.unparsable(&record)
        }
        record.responseDetails = details
        if details == RequestRecord.streamIdleTimeout { record.responseFlags = "SI" }
        if let partial { record.bytesReceived = partial.bytesReceived }
        var response = response
        ResponseStamp.apply(&response, server: ResponseStamp.outboundServer, serviceTime: nil)
        context.finish(&record, response: response, start: start)
        return response
    }

    /// What the record says of the request and of this side as its source: method, user agent,
    /// client address, `x-forwarded-for`, this workload's identity and labels, and the request ID
    /// (generated into `head` when missing).
    private func describe(_ record: inout RequestRecord, _ head: inout HTTPRequestHead, source: String?) {
        record.method = head.method.rawValue
        record.userAgent = head.headers.first(name: "user-agent")
        record.sourceAddress = source
        record.downstreamLocalAddress = local
        record.forwardedFor = head.headers.first(name: "x-forwarded-for")
        record.sourcePrincipal = context.identity.current?.identity.spiffeIDString
        record.sourceWorkload = context.workload.name
        record.sourceNamespace = context.workload.namespace
        record.source(context.telemetry)
        record.requestID = RequestIDs.ensure(&head.headers)
        context.tracing?.start(&record, headers: &head.headers)
    }

    private func route(_ request: BufferedRequest, source: String?, record: consuming RequestRecord, on loop: any EventLoop, done: @escaping Routed) {
        var head = request.head
        record.bytesReceived = request.body.readableBytes
        record.upload = request.upload
        describe(&record, &head, source: source)
        if let refusal = context.codecRefusal(request, &record) {
            done(refusal, record)
            return
        }
        if head.method == .CONNECT {
            // Istio's routes have no CONNECT matcher: Envoy finds no route for it.
            record.responseFlags = "NR"
            record.responseDetails = "route_not_found"
            done(.local(.notFound, ""), record)
            return
        }
        let target: OutboundTarget
        do {
            target = try OutboundTarget(head: head)
        } catch {
            record.responseFlags = "NR"
            done(.local(.badRequest, error.reason + "\n"), record)
            return
        }
        record.path = target.path
        record.authority = target.authority
        head.uri = target.path
        HopByHop.strip(&head.headers)
        // An application may not forge the identity header; most requests carry none, and a
        // removal would copy the shared header list even then.
        if head.headers.contains(name: "x-forwarded-client-cert") { head.headers.remove(name: "x-forwarded-client-cert") }
        head.headers.set(name: "host", value: target.authority)
        // The peer's proxy is spoken to in HTTP/1.1, whose connections stay open without a
        // `connection` header (Envoy's upstream codec sends none either).
        if head.version == .http1_0 { head.version = .http1_1 }

        guard let config = context.config.current else {
            record.responseFlags = "NC"
            done(.local(.serviceUnavailable, "no config received from the control plane yet, so no service is known\n"), record)
            return
        }
        let ports = config.registry.resolveAll(host: target.host, clientNamespace: context.workload.namespace)
        guard let first = ports.first else {
            var forwarded = BufferedRequest(head: head, body: request.body)
            forwarded.cancellation = request.cancellation
            forwarded.isStreamed = request.isStreamed
            forwarded.upload = request.upload
            passthrough(forwarded, target: target, record: record, on: loop, done: done)
            return
        }
        let fqdn = first.hostname(domain: config.registry.domain)
        record.destinationService = fqdn
        record.destinationServiceName = first.name
        record.destinationServiceNamespace = first.namespace
        // A port, when the client names one, picks the service port; without one, the lowest port.
        guard let service = target.port.map({ port in ports.first { $0.port == port } }) ?? first else {
            record.responseFlags = "NR"
            done(.local(.notFound, "service \(fqdn) serves port \(ports.map { String($0.port) }.joined(separator: ", ")), not \(target.port ?? 0)\n"), record)
            return
        }
        guard let endpoint = balancer.pick(service.endpoints, service: fqdn) else {
            record.responseFlags = "UH"
            done(.local(.serviceUnavailable, "no healthy upstream: service \(fqdn) has no registered endpoints\n"), record)
            return
        }
        record.upstreamHost = endpoint.address
        record.upstreamCluster = service.clusterName(domain: config.registry.domain)
        record.destinationWorkload = endpoint.workload
        record.destinationNamespace = service.namespace
        record.destination(endpoint.telemetry)
        guard let current = context.identity.current else {
            record.responseFlags = "UF"
            done(.local(.serviceUnavailable, "this proxy has no workload identity yet, so it cannot originate mTLS\n"), record)
            return
        }
        let verifier = PeerVerifier(roots: current.identity.roots, revoked: config.revoked, expected: service.expectedIdentities, usage: .serverAuth)
        // HTTP/2 and gRPC stay HTTP/2 between the proxies; HTTP/1.1 stays HTTP/1.1.
        let http2 = request.isHTTP2 || request.isGRPC
        // The ClientHello names the service as Istio's sidecars name it, which the peer's
        // `connection.sni` conditions read.
        let tls = TLSOrigination(
            generation: current.generation, verifier: verifier, context: http2 ? current.contexts.clientHTTP2 : current.contexts.client,
            serverName: service.serverName(domain: config.registry.domain))
        // Closures below capture the context (one reference) and read its logger only on failure.
        let context = self.context
        if HTTPUpgrade.isUpgrade(request.head) {
            // A WebSocket goes to the peer's proxy on an mTLS connection of its own, as HTTP/1.1.
            var upgrade = head
            HTTPUpgrade.restore(&upgrade.headers, from: request.head.headers)
            let target = UpstreamTarget(host: endpoint.host, port: endpoint.port, tls: endpoint.plaintext ? nil : tls)
            let forwardedAt = NIODeadline.now()
            context.upstream.upgrade(BufferedRequest(head: upgrade), to: target, timeout: context.upstreamTimeout) { [record] outcome in
                var record = record
                switch outcome {
                case .success((let result, let upgraded)):
                    record.upstreamServiceTime = ResponseStamp.milliseconds(since: forwardedAt)
                    record.destinationPrincipal = result.peer?.spiffeIDString
                    var response = result.response
                    response.upgraded = upgraded
                    done(response, record)
                case .failure(let error):
                    context.logger.warning("outbound upgrade failed", metadata: ["proxy.service": "\(fqdn)", "proxy.endpoint": "\(endpoint.host):\(endpoint.port)", "error": "\(error)"])
                    done(UpstreamFailure(error, showError: true).answer(&record), record)
                }
            }
            return
        }
        let forwardedAt = NIODeadline.now()
        // What the record says of the peer's answer, or of the failure.
        let described: @Sendable (Result<UpstreamResult, any Error>, inout RequestRecord) -> BufferedResponse = { outcome, record in
            switch outcome {
            case .success(let result):
                record.upstreamServiceTime = ResponseStamp.milliseconds(since: forwardedAt)
                record.destinationPrincipal = result.peer?.spiffeIDString
                return result.response
            case .failure(let error):
                context.logger.warning("outbound request failed", metadata: ["proxy.service": "\(fqdn)", "proxy.endpoint": "\(record.upstreamHost ?? "")", "error": "\(error)"])
                return UpstreamFailure(error, showError: true).answer(&record)
            }
        }
        let route = RetryRoute(endpoints: service.endpoints, service: fqdn, tls: tls, http2: http2)
        let upstreamTarget = route.target(endpoint)
        if request.isStreamed {
            // A gRPC call: relayed to the peer's proxy as it arrives (see `StreamRelay`).
            done(.relaying(head, to: upstreamTarget, context: context, server: ResponseStamp.outboundServer, described: described), record)
            return
        }
        var forwarded = BufferedRequest(head: head, body: request.body, trailers: request.trailers)
        forwarded.cancellation = request.cancellation
        forwarded.upload = request.upload
        send(forwarded, attempt: 1, to: endpoint, route: route, tried: nil, record: record, on: loop, described: described, done: done)
    }

    /// Istio's default retry policy for a service's routes (`retry.DefaultPolicy`): a request
    /// whose connection could not be made (Envoy's `connect-failure`) is sent again, at most twice,
    /// to an endpoint not tried yet when the service has one (`previous_hosts`), after Envoy's
    /// jittered back-off (a random wait below 25 ms, then below 75 ms). Every attempt carries
    /// `x-envoy-attempt-count`, as Istio's routes ask. A request whose connection was made is never
    /// sent twice: Istio's default retries no status code.
    private func send(
        _ request: BufferedRequest, attempt: Int, to endpoint: ServiceEndpoint, route: RetryRoute, tried: RetryAttempts?, record: consuming RequestRecord,
        on loop: any EventLoop, described: @escaping @Sendable (Result<UpstreamResult, any Error>, inout RequestRecord) -> BufferedResponse,
        done: @escaping Routed
    ) {
        var request = request
        request.head.headers.set(name: "x-envoy-attempt-count", value: String(attempt))
        record.upstreamHost = endpoint.address
        record.destinationWorkload = endpoint.workload
        record.destination(endpoint.telemetry)
        let streams = !record.isGRPC
        context.upstream.send(request, to: route.target(endpoint), timeout: GRPCFraming.exchangeTimeout(request.head, proxy: context.upstreamTimeout), on: loop, streamsResponse: streams) { [self, request, record = consume record] outcome in
            if case .failure(let error) = outcome, (error as? ProxyError)?.code == .upstreamConnect {
                if attempt <= RetryAttempts.retries, request.cancellation?.isCancelled != true {
                    context.logger.info(
                        "outbound connection failed; retrying",
                        metadata: ["proxy.endpoint": "\(endpoint.address)", "proxy.attempt": "\(attempt)", "error": "\(error)"])
                    let tried = tried ?? RetryAttempts(first: endpoint)
                    let next = tried.next(after: endpoint, in: route, balancer: balancer)
                    loop.scheduleTask(in: RetryAttempts.backOff(afterAttempt: attempt)) {
                        send(request, attempt: attempt + 1, to: next, route: route, tried: tried, record: record, on: loop, described: described, done: done)
                    }
                    return
                }
                var record = record
                let response = described(outcome, &record)
                // The retries ran out, as Envoy flags it.
                if attempt > 1 { record.responseFlags += ",URX" }
                done(response, record)
                return
            }
            var record = record
            let response = described(outcome, &record)
            done(response, record)
        }
    }

    /// Hosts outside the registry: forwarded in plaintext under ALLOW_ANY, refused under REGISTRY_ONLY.
    private func passthrough(_ request: BufferedRequest, target: OutboundTarget, record: consuming RequestRecord, on loop: any EventLoop, done: @escaping Routed) {
        // As Istio's telemetry labels such traffic: the host as the service, the cluster as its name.
        record.destinationService = target.host
        record.upstreamCluster = context.outboundPolicy == .allowAny ? "PassthroughCluster" : "BlackHoleCluster"
        record.destinationServiceName = record.upstreamCluster
        let port = target.port ?? 80
        // The outbound listener itself: forwarding there would send the request round again, and
        // again, until sockets run out. Istio black-holes traffic addressed to 15001 the same way.
        if own.isSelf(host: target.host, port: port) {
            record.upstreamCluster = "BlackHoleCluster"
            record.destinationServiceName = "BlackHoleCluster"
            record.responseFlags = "NR"
            record.responseDetails = "BlackHoleCluster"
            done(.local(.badGateway, "\(EndpointAddress.join(target.host, port)) is this proxy's own outbound listener: send the request to a service (Host: reviews) or another address\n"), record)
            return
        }
        guard context.outboundPolicy == .allowAny else {
            record.responseFlags = "NR"
            record.responseDetails = "BlackHoleCluster"
            done(.local(.badGateway, "\(target.host) is not a service in the mesh registry, and the outbound traffic policy is REGISTRY_ONLY\n"), record)
            return
        }
        record.upstreamHost = EndpointAddress.join(target.host, port)
        let forwardedAt = NIODeadline.now()
        let described: @Sendable (Result<UpstreamResult, any Error>, inout RequestRecord) -> BufferedResponse = { outcome, record in
            switch outcome {
            case .success(let result):
                record.upstreamServiceTime = ResponseStamp.milliseconds(since: forwardedAt)
                return result.response
            case .failure(let error):
                return UpstreamFailure(error, showError: true).answer(&record)
            }
        }
        if request.isStreamed {
            // A gRPC call to a host outside the mesh: relayed as it arrives, over HTTP/2 in plaintext.
            done(.relaying(request.head, to: UpstreamTarget(host: target.host, port: port, http2: true), context: context, server: ResponseStamp.outboundServer, described: described), record)
            return
        }
        let streams = !record.isGRPC
        context.upstream.send(request, to: UpstreamTarget(host: target.host, port: port), timeout: GRPCFraming.exchangeTimeout(request.head, proxy: context.upstreamTimeout), on: loop, streamsResponse: streams) { [record = consume record] outcome in
            var record = record
            let response = described(outcome, &record)
            done(response, record)
        }
    }
}

/// The outbound listener's own address, as a request may name it: its port once bound, on its
/// listen address, any loopback address, `localhost`, or the unspecified address.
/// Where a service's request may go: its endpoints, and how each is reached.
struct RetryRoute: Sendable {
    let endpoints: [ServiceEndpoint]
    let service: String
    let tls: TLSOrigination
    let http2: Bool

    /// How `endpoint` is reached: mTLS, or plaintext when its PeerAuthentication disables mTLS
    /// (HTTP/2 then with prior knowledge).
    func target(_ endpoint: ServiceEndpoint) -> UpstreamTarget {
        UpstreamTarget(host: endpoint.host, port: endpoint.port, tls: endpoint.plaintext ? nil : tls, http2: http2)
    }
}

/// The endpoints one request has tried, made at its first retry.
final class RetryAttempts: Sendable {
    /// Istio's default number of retries.
    static let retries = 2
    /// Envoy's default base interval between retries.
    static let baseInterval: TimeAmount = .milliseconds(25)

    private let tried: Mutex<Set<String>>

    init(first: ServiceEndpoint) {
        tried = Mutex([first.address])
    }

    /// The endpoint for the next attempt: one not tried yet, or any when every one has been tried,
    /// in a turn of its own, so that retries do not shift the service's round robin.
    func next(after endpoint: ServiceEndpoint, in route: RetryRoute, balancer: RoundRobin) -> ServiceEndpoint {
        let untried = tried.withLock { tried in route.endpoints.filter { !tried.contains($0.address) } }
        let next = balancer.pick(untried.isEmpty ? route.endpoints : untried, service: "\(route.service) retries") ?? endpoint
        tried.withLock { _ = $0.insert(next.address) }
        return next
    }

    /// Envoy's back-off before retry `attempt` (1 for the first): a random time below
    /// (2^attempt − 1) × 25 ms.
    static func backOff(afterAttempt attempt: Int) -> TimeAmount {
        let ceiling = ((1 << attempt) - 1) * baseInterval.nanoseconds
        return .nanoseconds(Int64.random(in: 0..<max(ceiling, 1)))
    }
}

final class OwnAddress: Sendable {
    let host: String
    let port = Atomic<Int>(0)

    init(host: String) {
        self.host = host
    }

    func isSelf(host candidate: String, port candidatePort: Int) -> Bool {
        let bound = port.load(ordering: .relaxed)
        guard bound != 0, candidatePort == bound else { return false }
        let name = candidate.lowercased()
        if name == host.lowercased() || ["localhost", "::1", "0.0.0.0", "::", "[::1]", "[::]"].contains(name) { return true }
        return name.hasPrefix("127.") && name.split(separator: ".").count == 4 && name.split(separator: ".").allSatisfy { UInt8($0) != nil }
    }
}
