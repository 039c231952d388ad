import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import RampartAuthn
import RampartPolicy

/// The inbound side's HTTP policy enforcement: peer authentication (already done by the
/// listener), then request authentication, then authorization, then the application.
struct InboundHTTP: Sendable {
    let context: ProxyContext

    /// Serves one HTTP/1.1 connection: its task decides each request and waits for its answer.
    func serve(_ stream: HTTPRequestStream, info: ConnectionInfo) async {
        let loop = stream.channel.eventLoop
        await HTTPServing.serve(
            stream,
            respond: { request in
                await Listening.answer(request, on: loop) { request, loop, answer in respond(request, info: info, on: loop, answer: answer) }
            },
            refused: { head, response, details, partial in refused(head, response, details: details, partial: partial, info: info) })
    }

    /// Serves one HTTP/2 connection: each stream is one request, decided and forwarded on its own.
    func serve(_ streams: Listening.HTTP2Streams, connection: any Channel, info: ConnectionInfo) async {
        await Listening.serveStreams(
            streams, connection: connection, logger: context.logger,
            respond: { request in
                await Listening.answer(request, on: connection.eventLoop) { request, loop, answer in
                    respond(request, info: info, on: loop, answer: answer)
                }
            },
            refused: { head, response, details, partial in refused(head, response, details: details, partial: partial, info: info) })
    }

    /// Records a request answered before any policy read it (see `HTTPServing.Refused`) in the
    /// metrics and the access log, and stamps its answer as every answer of this side is stamped.
    func refused(
        _ head: HTTPRequestHead?, _ response: BufferedResponse, details: String, partial: PartialRequest? = nil, info: ConnectionInfo
    ) -> BufferedResponse {
        let start = partial?.started ?? Date()
        var request = BufferedRequest(head: head ?? HTTPRequestHead(version: .http1_1, method: .GET, uri: ""))
        var record = RequestRecord(reporter: .destination, startTime: start, protocolName: request.protocolName)
        record.isGRPC = request.isGRPC
        describe(&record, request: request, info: info)
        if head != nil {
            record.requestID = RequestIDs.ensure(&request.head.headers)
        } else {
            Self.unparsable(&record)
        }
        record.responseDetails = details
        if details == RequestRecord.streamIdleTimeout { record.responseFlags = "SI" }
        if let partial { record.bytesReceived = partial.bytesReceived }
        var response = response
        ResponseStamp.apply(&response, server: ResponseStamp.inboundServer, serviceTime: nil)
        context.finish(&record, response: response, start: start)
        return response
    }

    /// Answers one request: decides it, forwards it when allowed, records it in the metrics and
    /// the access log, and calls `answer` with the response. Called by the connection's task
    /// (see ``Listening/answer(_:on:_:)``), which runs on `loop`, the connection's event loop;
    /// `answer` runs on the loop of the upstream connection, or in the task of a JWT check.
    func respond(_ request: BufferedRequest, info: ConnectionInfo, on loop: any EventLoop, answer: @escaping Listening.Answer) {
        let start = request.arrived ?? Date()
        var record = RequestRecord(reporter: .destination, startTime: start, protocolName: request.protocolName)
        record.isGRPC = request.isGRPC
        record.countMessages(of: request)
        describe(&record, request: request, info: info)
        let context = self.context
        handle(request, info: info, record: record, on: loop) { response, record in
            if let relay = response.relay {
                // A call relayed as it arrives is reported when it ends (its answer is stamped by
                // the relay's `answered`, see `decide`).
                relay.attach(record: record) { record, response in context.finish(&record, response: response, start: start) }
                answer(response)
                return
            }
            var record = record
            var response = response
            ResponseStamp.apply(&response, server: ResponseStamp.inboundServer, serviceTime: record.upstreamServiceTime)
            // Gone before the answer: seen by the connection's close, or by an upload cut short.
            if request.cancellation?.isCancelled == true { record.downstreamDisconnected = true }
            context.finish(&record, response: response, start: start)
            answer(response)
        }
    }

    /// What receives a response and the record of the exchange that made it.
    typealias Handled = @Sendable (BufferedResponse, RequestRecord) -> Void

    /// Decides one request and, when it is allowed, forwards it to the application.
    ///
    /// Everything up to the application runs at once on the connection's loop; only a JWT check
    /// (whose keys may have to be fetched) waits as a task, and the decision then goes on on `loop`.
    func handle(
        _ request: BufferedRequest, info: ConnectionInfo, record: consuming RequestRecord, on loop: any EventLoop,
        done: @escaping Handled
    ) {
        var request = request
        record.requestID = RequestIDs.ensure(&request.head.headers)
        context.tracing?.start(&record, headers: &request.head.headers)
        if let refusal = context.codecRefusal(request, &record) {
            done(refusal, record)
            return
        }
        // The request target as Envoy's HTTP codec makes it, before anything reads it.
        if let problem = Self.originForm(&request.head) {
            record.responseDetails = problem.details
            done(.local(problem.status, ""), record)
            return
        }
        guard let config = context.config.current else {
            record.responseFlags = "NC"
            record.responseDetails = "no_config_received"
            done(.local(.forbidden, "RBAC: access denied (this proxy has not yet received its config from the control plane)\n"), record)
            return
        }
        // A certificate revoked after the handshake stops working on the connection it opened.
        if let peer = info.peer, config.revoked.serials.contains(peer.serial) {
            record.responseDetails = "peer_certificate_revoked"
            var response = BufferedResponse.local(.forbidden, "the client certificate \(peer.serial) was revoked by the CA\n")
            response.head.headers.replaceOrAdd(name: "connection", value: "close")
            done(response, record)
            return
        }
        if let peerID = info.peerID, let source = config.registry.workloads[peerID] {
            record.sourceWorkload = source.workload
            record.sourceNamespace = source.namespace
            record.source(source.telemetry)
        }
        // The forwarding headers are set before the policies read the request, as Envoy's
        // connection manager sets them before its filters: a client cannot forge them past a policy.
        Self.treatAsConnectionManager(&request.head.headers)
        Self.setForwardingHeaders(&request.head, info: info, own: context.identity.current?.identity.spiffeIDString ?? "")
        Self.joinCookies(&request.head.headers)
        let authz = Self.authzRequest(
            request, info: info, workload: context.workload, appPort: context.appPort, headers: config.policies.readsHeaders)
        guard !config.jwtProviders.isEmpty else {
            decide(request, authz: authz, authn: nil, config: config, info: info, record: record, on: loop, done: done)
            return
        }
        let authenticator = context.authenticator
        Task { [request, record] in
            let result = await authenticator.authenticate(authz, providers: config.jwtProviders)
            let authenticated = result.tokenPresent ? authz.with(jwt: result.outcome) : authz
            let authn = result.tokenPresent ? result : nil
            loop.execute {
                self.decide(
                    request, authz: authenticated, authn: authn, config: config, info: info, record: record, on: loop,
                    done: done)
            }
        }
    }

    /// Authorizes the request (after any JWT check), and forwards it when allowed.
    private func decide(
        _ request: BufferedRequest, authz: AuthzRequest, authn: RequestAuthnResult?, config: ProxyConfig, info: ConnectionInfo,
        record: consuming RequestRecord, on loop: any EventLoop,
        done: @escaping Handled
    ) {
        let decision = config.policies.evaluate(authz)
        record.policy = decision.policy
        record.rule = decision.rule
        if !decision.dryRun.isEmpty {
            record.dryRun = decision.dryRun.filter { $0.wouldBe == .deny }.map(\.policy)
            context.metrics.recordDryRun(decision.dryRun)
        }
        guard decision.decision == .allow else {
            if decision.cause == .relativePath {
                // `originForm` answers these first; the policies' reading agrees.
                record.responseDetails = "absolute_path_rejected"
                done(.local(.notFound, ""), record)
                return
            }
            if decision.status == 400 {
                // The request (a lower-case method, say) or its path was refused before any policy.
                if case .malformedRequest = decision.cause {
                    record.responseDetails = "codec_error"
                } else {
                    record.responseDetails = "path_normalization_failed"
                }
                done(.local(.badRequest, ""), record)
                return
            }
            // The access log shows the path the policies read, as Envoy logs :path after its
            // normalize_path has rewritten it.
            record.path = Self.normalizedTarget(request.head.uri)
            if decision.status == 401 || decision.cause == .jwtAudienceNotAllowed {
                // Envoy's JWT filter answers with its status text, and a challenge even for the audience (403).
                let text = Self.jwtStatusText(authn?.failure?.kind, audience: decision.cause == .jwtAudienceNotAllowed, envoyText: authn?.failure?.envoyText)
                record.responseDetails = "jwt_authn_access_denied{\(text.replacingOccurrences(of: " ", with: "_"))}"
                var response = BufferedResponse.local(decision.status == 401 ? .unauthorized : .forbidden, text)
                response.head.headers.add(name: "www-authenticate", value: Self.bearerChallenge(request.head, tls: info.tls))
                done(response, record)
                return
            }
            if decision.cause == .customDenied || decision.cause == .customUnanswered {
                // A CUSTOM policy's refusal is its ext-authz filter's, as Envoy logs one: this proxy
                // has no ext-authz client, so the provider's answer is missing, which Envoy's filter
                // (failure_mode_allow false) answers with an empty 403.
                record.responseFlags = "UAEX"
                record.responseDetails = decision.cause == .customDenied ? "ext_authz_denied" : "ext_authz_error"
                done(.local(.forbidden, ""), record)
                return
            }
            record.responseDetails = RequestRecord.rbacDetails(decision.policy, rule: decision.rule)
            done(.local(.forbidden, "RBAC: access denied"), record)
            return
        }
        if request.head.method == .CONNECT {
            // Authorized like any request, then not routed: Istio's inbound routes have no CONNECT
            // matcher, so Envoy's router answers 404 and the application never sees it.
            record.responseFlags = "NR"
            record.responseDetails = "route_not_found"
            done(.local(.notFound, ""), record)
            return
        }
        var forwarded = request
        // The application gets the path the policies were checked against, as Envoy's
        // normalize_path also rewrites the upstream :path.
        forwarded.head.uri = Self.normalizedTarget(request.head.uri)
        record.path = forwarded.head.uri
        Self.prepareForApplication(&forwarded.head)
        // Without a token the decision's edits are the removals of the headers the JWT rules write.
        let edits = decision.decision != .allow ? [] : authn.map { $0.failure == nil ? $0.headerEdits : [] } ?? decision.headerEdits
        Self.apply(edits, token: authz.jwt?.raw, to: &forwarded.head.headers)
        for case .removeQueryParameter(let name) in edits {
            forwarded.head.uri = RequestTarget.removingQueryParameter(name, from: forwarded.head.uri)
        }
        let context = self.context
        if HTTPUpgrade.isUpgrade(request.head) {
            // A WebSocket: the application gets it on a connection of its own, joined to the
            // client's once it answers 101.
            HTTPUpgrade.restore(&forwarded.head.headers, from: request.head.headers)
            let target = UpstreamTarget(host: context.appHost, port: context.appPort)
            let forwardedAt = NIODeadline.now()
            context.upstream.upgrade(forwarded, to: target, timeout: context.upstreamTimeout) { [record] outcome in
                var record = record
                switch outcome {
                case .success((let result, let upgraded)):
                    record.upstreamHost = context.appAddress
                    record.upstreamServiceTime = ResponseStamp.milliseconds(since: forwardedAt)
                    var response = result.response
                    response.upgraded = upgraded
                    done(response, record)
                case .failure(let error):
                    // The application was the upstream chosen, as Envoy logs it, answer or not.
                    record.upstreamHost = context.appAddress
                    context.logger.warning("cannot reach the application", metadata: ["proxy.app": "\(context.appHost):\(context.appPort)", "error": "\(error)"])
                    done(UpstreamFailure(error, showError: false).answer(&record), record)
                }
            }
            return
        }
        let http2 = context.appProtocol.usesHTTP2(for: request)
        let target = UpstreamTarget(host: context.appHost, port: context.appPort, http2: http2)
        let forwardedAt = NIODeadline.now()
        // What the record says of the application's answer, or of its failure.
        let described: @Sendable (Result<UpstreamResult, any Error>, inout RequestRecord) -> BufferedResponse = { outcome, record in
            switch outcome {
            case .success(let result):
                record.upstreamHost = context.appAddress
                record.upstreamServiceTime = ResponseStamp.milliseconds(since: forwardedAt)
                return result.response
            case .failure(let error):
                // The application was the upstream chosen, as Envoy logs it, answer or not.
                record.upstreamHost = context.appAddress
                let what = error is ResponseTooLarge ? "the application's response is too large to pass on" : "cannot reach the application"
                context.logger.warning("\(what)", metadata: ["proxy.app": "\(context.appHost):\(context.appPort)", "error": "\(error)"])
                return UpstreamFailure(error, showError: false).answer(&record)
            }
        }
        if context.appProtocol == .grpcWeb, let call = GRPCWeb.call(request.head) {
            forwardGRPCWeb(forwarded, call: call, to: target, record: record, on: loop, described: described, done: done)
            return
        }
        if request.isStreamed {
            // A gRPC call: relayed to the application as it arrives (see `StreamRelay`).
            done(.relaying(forwarded.head, to: target, context: context, server: ResponseStamp.inboundServer, described: described), record)
            return
        }
        // A gRPC response not relayed as a stream is read whole, so its status can be given as gRPC's.
        let streams = !record.isGRPC
        context.upstream.send(forwarded, to: target, timeout: GRPCFraming.exchangeTimeout(forwarded.head, proxy: context.upstreamTimeout), on: loop, streamsResponse: streams) { [record = consume record] outcome in
            var record = record
            let response = described(outcome, &record)
            done(response, record)
        }
    }

    /// Forwards an allowed gRPC-Web call to the application as a gRPC call, and rewrites its
    /// answer for the client (see `GRPCWeb`). The response is passed on as it comes, so the
    /// messages of a server-streaming call reach the browser one by one.
    private func forwardGRPCWeb(
        _ request: BufferedRequest, call: GRPCWeb.Call, to target: UpstreamTarget, record: consuming RequestRecord,
        on loop: any EventLoop, described: @escaping @Sendable (Result<UpstreamResult, any Error>, inout RequestRecord) -> BufferedResponse,
        done: @escaping Handled
    ) {
        var forwarded = request
        GRPCWeb.translate(&forwarded.head)
        var bodyDecoder: GRPCWeb.TextDecoder?
        if call.textRequest {
            var decoder = GRPCWeb.TextDecoder()
            do {
                forwarded.body = try decoder.decode(request.body)
                if let upload = request.upload {
                    upload.decodeText(with: decoder)
                    bodyDecoder = decoder
                } else {
                    try decoder.finish()
                }
            } catch {
                record.responseDetails = error.details
                done(.local(.badRequest, "Bad gRPC-web request, invalid base64 data.\n"), record)
                return
            }
        }
        // The call's messages as the application gets them: decoded, for a base64 body.
        var counter = GRPCMessageCounter()
        counter.feed(forwarded.body)
        if let upload = request.upload {
            upload.countMessages(after: counter, decoding: bodyDecoder)
        } else {
            record.requestMessages = counter.count
        }
        let timeout = GRPCFraming.exchangeTimeout(forwarded.head, proxy: context.upstreamTimeout)
        context.upstream.send(forwarded, to: target, timeout: timeout, on: loop, streamsResponse: true) { [record = consume record] outcome in
            var record = record
            if case .failure(let error) = outcome, let bad = error as? GRPCWeb.BadText {
                // The rest of the body, decoded as the application took it, was not base64.
                record.upstreamHost = context.appAddress
                record.responseDetails = bad.details
                done(.local(.badRequest, "Bad gRPC-web request, invalid base64 data.\n"), record)
                return
            }
            var response = described(outcome, &record)
            // Counted here, before the bridge reframes the body (a whole answer), or by the
            // bridge's encoder as the body passes (see `HTTPServing.deliver`).
            record.responseMessages = GRPCWeb.respond(&response, call: call)
            // Bridged, the call is gRPC in the metrics, as Istio's stats filter, placed after
            // the gRPC-Web filter, counts it: `request_protocol="grpc"` and its gRPC status.
            record.isGRPC = true
            done(response, record)
        }
    }

    /// The request as the evaluator sees it. Its header map is built only when `headers` says
    /// the workload's policies may read it (see `WorkloadPolicies.readsHeaders`).
    static func authzRequest(
        _ request: BufferedRequest, info: ConnectionInfo, workload: WorkloadInfo, appPort: Int, headers readsHeaders: Bool = true
    ) -> AuthzRequest {
        var headers: [String: String] = [:]
        var repeated: [String: [String]] = [:]
        let authority = request.head.headers.first(name: "host")
        if readsHeaders {
            for (name, value) in request.head.headers {
                let key = name.lowercased()
                if let earlier = headers[key] {
                    headers[key] = "\(earlier),\(value)"
                    repeated[key, default: [earlier]].append(value)
                } else {
                    headers[key] = value
                }
            }
            // `:authority`, `:method` and `:path` are read from the host, method and path (see
            // `AuthzRequest.pseudoHeader`), `:path` normalized as Envoy's is.
        }
        let ip = info.remoteIP
        // remote.ip is the last x-forwarded-for address when there is one, as at Istio's sidecar.
        var forwardedFor = headers["x-forwarded-for"]
        if !readsHeaders {
            for (name, value) in request.head.headers where name.utf8.count == 15 && name.lowercased() == "x-forwarded-for" {
                forwardedFor = forwardedFor.map { "\($0),\(value)" } ?? value
            }
        }
        return AuthzRequest(
            transport: .http,
            source: AuthzRequest.Source(
                principal: info.peerPrincipal, namespace: info.peerNamespace, ip: ip,
                remoteIP: AuthzRequest.forwardedClient(forwardedFor) ?? ip,
                mtls: info.peer != nil
            ),
            destination: AuthzRequest.Destination(namespace: workload.namespace, labels: workload.labels, port: appPort, ip: info.localIP),
            method: request.head.method.rawValue, host: authority, path: request.head.uri, headers: headers,
            sni: info.sni, repeatedHeaders: repeated
        )
    }

    /// The headers Istio's sidecar sets on every inbound request before its filters run:
    /// `x-forwarded-client-cert` appended for an mTLS peer (`APPEND_FORWARD`) and removed for
    /// plaintext, so a client cannot forge it, and `x-forwarded-proto` from the connection when the
    /// request has none: Istio's inbound listeners do not use the remote address, so Envoy keeps an
    /// `x-forwarded-proto` the client sent.
    static func setForwardingHeaders(_ head: inout HTTPRequestHead, info: ConnectionInfo, own: String) {
        if let element = info.forwardedClientCertElement(by: own) {
            // Most requests carry no XFCC to read: the element is then added as it is.
            if head.headers.contains(name: "x-forwarded-client-cert") {
                let existing = head.headers["x-forwarded-client-cert"].joined(separator: ",")
                head.headers.replaceOrAdd(
                    name: "x-forwarded-client-cert", value: ForwardedClientCert.appending(element, to: existing.isEmpty ? nil : existing))
            } else {
                head.headers.add(name: "x-forwarded-client-cert", value: element)
            }
        } else if head.headers.contains(name: "x-forwarded-client-cert") {
            head.headers.remove(name: "x-forwarded-client-cert")
        }
        if !head.headers.contains(name: "x-forwarded-proto") {
            head.headers.add(name: "x-forwarded-proto", value: info.tls ? "https" : "http")
        }
    }

    /// Removes or rewrites the headers Envoy's connection manager removes or rewrites before its
    /// filters (hop-by-hop headers, `te` other than `trailers`, `x-envoy-internal`, and Envoy's
    /// request-control headers on an external request; see `ConnectionManagerHeaders`), so that the
    /// policies read what Envoy's would. Most requests carry none of them and are left untouched.
    static func treatAsConnectionManager(_ headers: inout HTTPHeaders) {
        var found: [String] = []
        // Names are compared as bytes, without a lower-cased copy.
        for (name, _) in headers {
            if let treated = ConnectionManagerHeaders.treatedName(name), !found.contains(treated) { found.append(treated) }
        }
        guard !found.isEmpty else { return }
        func joined(_ name: String) -> String? {
            headers.contains(name: name) ? headers[name].joined(separator: ",") : nil
        }
        let circumstances = ConnectionManagerHeaders.Circumstances(
            connection: joined("connection"), upgrade: joined("upgrade"), forwardedFor: joined("x-forwarded-for"))
        for name in found {
            switch ConnectionManagerHeaders.treatment(of: name, value: joined(name) ?? "", fields: headers[name].count, in: circumstances) {
            case .keep: continue
            case .remove: headers.remove(name: name)
            case .replace(let kept): headers.replaceOrAdd(name: name, value: kept)
            }
        }
    }

    /// Joins the pieces of a request's cookies into one `cookie` field with `; `, as Envoy joins
    /// the crumbs an HTTP/2 client splits them into (RFC 9113 §8.2.3) and as RFC 6265 writes them:
    /// a policy or a `fromCookies` rule reads every cookie, and the application gets one field.
    static func joinCookies(_ headers: inout HTTPHeaders) {
        var pieces: [String] = []
        for (name, value) in headers where name.utf8.count == 6 && name.lowercased() == "cookie" { pieces.append(value) }
        guard pieces.count > 1 else { return }
        headers.remove(name: "cookie")
        headers.add(name: "cookie", value: pieces.joined(separator: "; "))
    }

    /// Headers the application receives (after `setForwardingHeaders`): hop-by-hop removed, and a
    /// request ID.
    static func prepareForApplication(_ head: inout HTTPRequestHead) {
        HopByHop.strip(&head.headers)
        RequestIDs.ensure(&head.headers)
        if head.version.major == 1 {
            head.headers.set(name: "connection", value: "keep-alive")
            if head.version.minor == 0 { head.version = .http1_1 }
        }
    }

    /// Makes an absolute-form request target (`GET http://host/path`, RFC 9112 §3.2.2) the
    /// origin-form Envoy's codec makes of it: the path (and query) as the target, the authority as
    /// `Host`. Returns why the request is refused, or `nil`:
    /// - an absolute target without an authority, or a request with more than one `Host` header
    ///   (RFC 9112 §3.2): 400;
    /// - an HTTP/1.1 request without `Host`: 400 (`missing_host_header`), as Envoy answers it;
    /// - an HTTP/1 target in another form (`ws://host/admin`, `admin`): 400, as Envoy's codec
    ///   accepts absolute URLs of http and https only. Policies would read such a target as a
    ///   path no rule names, while the application may read `/admin` out of it;
    /// - an HTTP/2 `:path` that does not start with `/`, or `*` other than for `OPTIONS`: 404, as
    ///   Envoy's connection manager answers a path that is not relative (`absolute_path_rejected`).
    ///
    /// `OPTIONS *` and the authority of a `CONNECT` are left as they are.
    static func originForm(_ head: inout HTTPRequestHead) -> (status: HTTPResponseStatus, details: String)? {
        var hosts = 0
        for (name, _) in head.headers where name.utf8.count == 4 && name.lowercased() == "host" { hosts += 1 }
        if hosts > 1 { return (.badRequest, "multiple_host_headers") }
        if head.uri.hasPrefix("/") || head.method == .CONNECT || (head.uri == "*" && head.method == .OPTIONS) {
            return hosts == 0 && head.version == .http1_1 ? (.badRequest, "missing_host_header") : nil
        }
        if head.version.major == 2 || head.uri == "*" { return (.notFound, "absolute_path_rejected") }
        guard let (authority, path) = RequestTarget.absoluteForm(head.uri) else { return (.badRequest, "http1.codec_error") }
        guard !authority.isEmpty else { return (.badRequest, "absolute_path_rejected") }
        head.uri = path
        head.headers.replaceOrAdd(name: "host", value: authority)
        return nil
    }

    /// The request target with its path normalized as the policies saw it (see `PathNormalizer`)
    /// and its query kept; a fragment is dropped.
    static func normalizedTarget(_ uri: String) -> String {
        guard uri.hasPrefix("/") else { return uri }
        let path = PathNormalizer.normalize(uri)
        guard let mark = uri.firstIndex(where: { $0 == "?" || $0 == "#" }), uri[mark] == "?" else { return path }
        let query = uri[mark...].prefix { $0 != "#" }
        return path + query
    }

    /// The body Envoy's JWT filter answers a refused token with (jwt_verify_lib's status text).
    static func jwtStatusText(_ kind: JWTFailure.Kind?, audience: Bool, envoyText: String? = nil) -> String {
        if audience { return "Audiences in Jwt are not allowed" }
        if let envoyText { return envoyText }
        switch kind {
        case .expired?: return "Jwt is expired"
        case .notYetValid?: return "Jwt not yet valid"
        case .unknownIssuer?: return "Jwt issuer is not configured"
        case .malformed?: return "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
        // Keys that cannot be fetched: istiod then gives Envoy a stand-in key set (one key, kid
        // "abc") that no token's kid names, so Envoy answers as for an unknown kid.
        case .noKeys?: return "Jwks doesn't have any valid public key"
        case .keysUnavailable?, .unknownKid?, .algorithmMismatch?: return "Jwks doesn't have key to match kid or alg from Jwt"
        case .audienceNotAllowed?: return "Audiences in Jwt are not allowed"
        case .badSignature?, nil: return "Jwt verification fails"
        }
    }

    /// The `www-authenticate` challenge of a refused token, as Envoy's JWT filter writes it:
    /// `Bearer realm="<scheme>://<host><path>", error="invalid_token"`, the path with its query.
    static func bearerChallenge(_ head: HTTPRequestHead, tls: Bool) -> String {
        // As Envoy's JWT filter builds it: the path with its query, cut at 256 characters.
        let host = head.headers.first(name: "host") ?? ""
        let path = String(head.uri.prefix(256))
        let realm = "\(tls ? "https" : "http")://\(host)\(path)".replacingOccurrences(of: "\"", with: "%22")
        return "Bearer realm=\"\(realm)\", error=\"invalid_token\""
    }

    /// Applies RequestAuthentication's header edits.
    static func apply(_ edits: [HeaderEdit], token: String?, to headers: inout HTTPHeaders) {
        for edit in edits {
            switch edit {
            case .remove(let name):
                headers.remove(name: name)
            case .setPayload(let name):
                // A name no request can carry (the webhook does not check it) is not sent.
                if let token, AuthzRequest.isHeaderToken(name) {
                    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
                    if parts.count == 3 { headers.replaceOrAdd(name: name, value: String(parts[1])) }
                }
            case .set(let name, let value):
                headers.replaceOrAdd(name: name, value: value)
            case .removeQueryParameter:
                break  // A change to the target, made where the target is rewritten.
            }
        }
    }

    /// A record of bytes the HTTP/1.1 parser refused names no request, and carries Envoy's flag for
    /// a downstream protocol error.
    static func unparsable(_ record: inout RequestRecord) {
        record.method = nil
        record.path = nil
        record.authority = nil
        record.userAgent = nil
        record.forwardedFor = nil
        record.responseFlags = "DPE"
    }

    private func describe(_ record: inout RequestRecord, request: BufferedRequest, info: ConnectionInfo) {
        record.method = request.head.method.rawValue
        record.path = request.head.uri
        record.authority = request.head.headers.first(name: "host")
        record.userAgent = request.head.headers.first(name: "user-agent")
        record.bytesReceived = request.body.readableBytes
        record.upload = request.upload
        record.sourceAddress = info.sourceAddress
        record.requestedServerName = info.sni
        record.forwardedFor = request.head.headers.first(name: "x-forwarded-for")
        record.downstreamLocalAddress = info.localAddress
        record.upstreamCluster = context.inboundCluster
        record.sourcePrincipal = info.peerID
        record.sourceNamespace = info.peerNamespace
        record.connectionSecurityPolicy = info.securityPolicy
        let workload = context.workload
        record.destinationPrincipal = context.identity.current?.identity.spiffeIDString
        record.destinationWorkload = workload.name
        record.destinationNamespace = workload.namespace
        record.destination(context.telemetry)
        if let service = context.destinationService {
            record.destinationService = service.fqdn
            record.destinationServiceName = service.name
            record.destinationServiceNamespace = workload.namespace
        }
    }
}
