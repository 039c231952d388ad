import NIOCore
import NIOHTTP1

/// Answers the whole requests of a server connection (see `HTTPRequestAssembler`) through
/// `respond`, keeping the connection alive while the client wants it.
enum HTTPServing {
    /// Records a request the proxy answers itself before anything decides it (a body past a
    /// limit, an HTTP/2 request without authority) with the answer and the access log's response
    /// details for it, and returns the answer as sent (stamped as the listener stamps its answers).
    /// `head` is nil for bytes the HTTP/1.1 parser could not read as a request.
    /// `partial` tells, for a request that never came whole, when it began and what of its body came.
    typealias Refused = @Sendable (
        _ head: HTTPRequestHead?, _ response: BufferedResponse, _ details: String, _ partial: PartialRequest?
    ) -> BufferedResponse

    /// How long a connection whose request was answered before its end (refused, or answered early
    /// by the application) stays open to take the rest of the request unread, so that its client
    /// reads the answer rather than a reset (Envoy's `delayed_close_timeout`).
    static let refusalLinger = TimeAmount.seconds(1)

    /// Serves an HTTP/2 stream's one exchange, then closes the stream.
    static func serveHTTP2(
        _ stream: HTTPRequestStream, respond: (BufferedRequest) async -> BufferedResponse, refused: Refused
    ) async {
        defer { stream.close() }
        while let assembled = await stream.next() {
            // The rest of a request whose exchange has ended (its stream is closing).
            if case .bodyPart = assembled { continue }
            if case .end = assembled { continue }
            if case .abandoned(let head, let partial) = assembled {
                _ = refused(head, .abandoned, "downstream_remote_disconnect", partial)
                return
            }
            // A stream the client resets (or whose connection goes) stops its upstream exchange.
            let cancellation = RequestCancellation()
            stream.channel.closeFuture.whenComplete { _ in cancellation.cancel() }
            let (framed, _, _) = await answer(assembled, respond: respond, refused: refused, cancellation: cancellation)
            if let relay = framed.relay, case .complete(let request) = assembled {
                // A call passed on as it arrives: the relay reads the rest of the request.
                await relay.run(client: stream.channel, parts: stream, request: request, cancellation: cancellation)
                return
            }
            if let streamed = framed.streamed {
                // The stream carries one exchange: it ends with the response, or is reset
                // when the response could not be written whole.
                let complete = await deliver(framed, streamed, on: stream.channel, cancellation: cancellation)
                cancellation.finish()
                Self.abandonUnfinishedUpload(assembled)
                if !complete { stream.channel.close(promise: nil) }
                return
            }
            cancellation.finish()
            // The stream's one answer: it closes once all of it has gone.
            try? await writeWhole(framed, on: stream.channel)
            return
        }
    }

    /// Writes a stream's last response and waits until all of it has gone out, so that closing
    /// the stream then drops nothing: an HTTP/2 stream sends its DATA only as the client's
    /// flow-control window allows, and closing it with frames still held would reset it with
    /// the answer cut short. A client that opens no window for `limit` (Envoy's
    /// `stream_idle_timeout`) has its stream closed.
    static func writeWhole(_ framed: FramedResponse, on channel: any Channel, limit: TimeAmount = .minutes(5)) async throws {
        let written = channel.eventLoop.makePromise(of: Void.self)
        let deadline = channel.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        channel.writeAndFlush(ResponseWrite.whole(framed), promise: written)
        try await written.futureResult.get()
    }

    /// Writes a response whose body follows its head as the upstream sends it (see
    /// `StreamedBody`): the head and what came with it at once, then each part as it comes, each
    /// write awaited only when the client's connection (or HTTP/2 window) takes no more for now.
    /// Returns whether the whole response was written; the exchange's record learns how it ended.
    ///
    /// A client that goes away closes the upstream (through `cancellation`, which this keeps until
    /// the end); a client that takes nothing for `limit` (Envoy's `stream_idle_timeout`) has its
    /// connection or stream closed.
    static func deliver(
        _ framed: FramedResponse, _ streamed: StreamedBody, on channel: any Channel, cancellation: RequestCancellation,
        limit: TimeAmount = .minutes(5)
    ) async -> Bool {
        var outcome = StreamedBody.Outcome(bytesSent: framed.body?.readableBytes ?? 0, cut: nil, clientGone: false)
        var writes: [ResponseWrite] = [.head(framed.head)]
        if let body = framed.body { writes.append(.body(body)) }
        var ended = false
        var encoder = framed.webEncoder
        while true {
            do {
                if ended || !channel.isWritable {
                    // The end is awaited until all of it has gone: the stream or connection may
                    // close after it, which must drop nothing.
                    let deadline = channel.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
                    defer { deadline.cancel() }
                    try await PartWrites.write(writes, to: channel)
                } else {
                    PartWrites.send(writes, to: channel, promise: nil)
                }
            } catch {
                outcome.clientGone = true
                break
            }
            if ended { break }
            let parts: [StreamedBody.Part]?
            do {
                parts = try await streamed.next()
            } catch {
                // The upstream closed under the exchange because the client went away, or failed
                // on its own.
                if cancellation.isCancelled || error is StreamedBody.ClientGone {
                    outcome.clientGone = true
                } else {
                    outcome.cut = StreamedBody.lateCut(by: error)
                }
                break
            }
            guard let parts else {
                outcome.cut = StreamedBody.lateCut(by: UpstreamClosedMidResponse())
                break
            }
            writes.removeAll(keepingCapacity: true)
            for part in parts {
                switch part {
                case .body(let received):
                    let chunk = encoder?.body(received) ?? received
                    // An empty chunk would end an HTTP/1.1 chunked body.
                    guard chunk.readableBytes > 0 else { continue }
                    outcome.bytesSent += chunk.readableBytes
                    writes.append(.body(chunk))
                case .end(let trailers):
                    outcome.grpcStatus = trailers?.first(name: "grpc-status")
                    if encoder != nil {
                        // A gRPC-Web client gets the trailers as the body's last frame.
                        let last = encoder!.end(trailers)
                        if last.readableBytes > 0 {
                            outcome.bytesSent += last.readableBytes
                            writes.append(.body(last))
                        }
                        writes.append(.end(nil))
                    } else {
                        writes.append(.end(trailers))
                    }
                    ended = true
                }
            }
        }
        if !ended || outcome.clientGone { streamed.abandon() }
        outcome.responseMessages = encoder?.messageCount
        streamed.finished(outcome)
        return ended && !outcome.clientGone
    }

    /// Serves an HTTP/1.1 connection through its inbox until the client closes it or asks to.
    static func serve(
        _ stream: HTTPRequestStream, respond: (BufferedRequest) async -> BufferedResponse, refused: Refused
    ) async {
        // A client that closes the connection while a request is answered stops its upstream
        // exchange; one object serves the connection's requests in turn.
        let cancellation = RequestCancellation()
        stream.channel.closeFuture.whenComplete { _ in cancellation.cancel() }
        while let assembled = await stream.next() {
            if case .abandoned(let head, let partial) = assembled {
                _ = refused(head, .abandoned, "downstream_remote_disconnect", partial)
                break
            }
            cancellation.begin()
            if !stream.channel.isActive { cancellation.cancel() }
            let stopsParser = if case .complete(let request) = assembled { HTTPUpgrade.stopsParser(request.head) } else { false }
            let (framed, last, unread) = await answer(
                assembled, respond: respond, refused: refused, cancellation: cancellation, draining: stream.draining)
            if let streamed = framed.streamed {
                // The next request waits for the end of this response. One cut short ends the
                // connection, the client's only sign that it is incomplete; so does one that ended
                // before its upload did, whose rest is not read.
                let complete = await deliver(framed, streamed, on: stream.channel, cancellation: cancellation)
                cancellation.finish()
                if !complete || last || Self.abandonUnfinishedUpload(assembled) {
                    stream.close()
                    return
                }
                if stopsParser { stream.resumeParsing() }
                continue
            }
            cancellation.finish()
            if let upgraded = framed.upgraded {
                // The connection carries the upgraded protocol's bytes from now on.
                stream.switchToBytes(after: framed, joining: upgraded)
                return
            }
            if unread {
                // The rest of an upload is not read: the connection lingers after the answer, as
                // after a refusal on the head, so that a client still sending reads it.
                stream.writeAndLinger(framed, for: refusalLinger)
                return
            }
            if last {
                stream.writeAndClose(framed)
                return
            }
            stream.write(framed)
            if stopsParser { stream.resumeParsing() }
        }
        stream.close()
    }

    /// Drops the rest of an upload the client is still sending once its exchange is over; returns
    /// whether there was one.
    @discardableResult
    private static func abandonUnfinishedUpload(_ assembled: AssembledRequest) -> Bool {
        guard case .complete(let request) = assembled, let upload = request.upload, !upload.hasEnded else { return false }
        upload.abandon()
        return true
    }

    /// The framed answer to one request, whether it is the connection's last, and whether it ends
    /// the connection with the rest of its request unread (which then lingers, see `refusalLinger`).
    /// An HTTP/1.1 answer given once the listener drains (`draining`) carries `connection: close`
    /// and ends the connection, as Envoy's drain ends it: the client learns to open its next
    /// connection elsewhere without a request lost in a race with the close.
    private static func answer(
        _ assembled: AssembledRequest, respond: (BufferedRequest) async -> BufferedResponse, refused: Refused,
        cancellation: RequestCancellation, draining: DrainFlag? = nil
    ) async -> (FramedResponse, last: Bool, unread: Bool) {
        let requestHead: HTTPRequestHead
        let response: BufferedResponse
        // Whether the rest of the request will not be read, which ends an HTTP/1.1 connection.
        var unread = false
        switch assembled {
        case .complete(var request):
            requestHead = request.head
            request.cancellation = cancellation
            response = await respond(request)
            if let relay = response.relay {
                return (FramedResponse(head: response.head, relay: relay), true, false)
            }
            // Answered whole before the client sent all of an upload (the application answered
            // early, or the proxy refused the request): the rest is not passed on, and the
            // connection ends. (A response passed on as it arrives may go on while the upload
            // does: the serving loop looks again at its end.)
            if response.streamed == nil, abandonUnfinishedUpload(assembled) { unread = true }
        case .missingAuthority(let head):
            requestHead = head
            response = refused(head, .local(.badRequest, HTTP2AuthorityNormalizer.missingAuthorityText), "missing_host_header", nil)
        case .stalled(let head, let partial):
            // As Envoy's stream idle timer answers a request still arriving; the rest of it will
            // not be read, so the connection ends.
            requestHead = head
            response = refused(head, .local(.requestTimeout, "stream timeout"), RequestRecord.streamIdleTimeout, partial)
            unread = true
        case .unparsable(let status, let details):
            // As Envoy's codec answers what it cannot parse: no body, and the connection ends.
            requestHead = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
            let response = refused(nil, .local(status, ""), details, nil)
            return (frame(response, for: requestHead, keepAlive: false), true, false)
        case .bodyPart, .end, .abandoned:
            // Parts of a request handed on at its head reach its relay, never here; an abandoned
            // request is recorded by the connection's loop.
            requestHead = HTTPRequestHead(version: .http2, method: .GET, uri: "/")
            response = .local(.badRequest, "")
        }
        // An HTTP/2 stream carries one exchange; HTTP/1.1 keeps the connection while both sides agree.
        let http2 = requestHead.version.major == 2
        // An upgrade answered with anything but 101 (denied here, or declined by the application),
        // or a CONNECT (never tunnelled), ends the connection, as Envoy ends it: what the client
        // sent after the request was meant for the new protocol or the tunnel, and is not read as HTTP.
        let refusedUpgrade =
            !http2 && response.upgraded == nil && (HTTPUpgrade.isUpgrade(requestHead) || requestHead.method == .CONNECT)
        // An HTTP/1.0 client learns where a streamed body of unknown length ends by the close.
        let endsByClose =
            response.streamed != nil && requestHead.version.major == 1 && requestHead.version.minor == 0
            && !response.head.headers.contains(name: "content-length")
        let keepAlive =
            http2
            || (requestHead.isKeepAlive && !unread && !refusedUpgrade && !HopByHop.asksToClose(response.head.headers)
                && draining?.isSet != true && !endsByClose)
        return (frame(response, for: requestHead, keepAlive: keepAlive), http2 || !keepAlive, unread)
    }

    /// A response framed for this client: hop-by-hop headers removed, `content-length` set,
    /// connection options as the exchange's version and keep-alive require.
    static func frame(_ response: BufferedResponse, for request: HTTPRequestHead, keepAlive: Bool) -> FramedResponse {
        var response = response
        var grpc = false
        if GRPCFraming.isGRPC(contentType: request.headers.first(name: "content-type")) {
            grpc = true
            if response.isLocal && response.head.status != .ok {
                // Envoy answers a gRPC call with a gRPC status over either version of HTTP.
                response = GRPCFraming.localReply(response)
                if request.version.major < 2 { response = GRPCFraming.overHTTP1(response) }
            } else if request.version.major == 2 {
                GRPCFraming.keepingStatus(&response)
            }
        }
        var head = response.head
        head.version = request.version
        HopByHop.strip(&head.headers)
        if head.status == .switchingProtocols { HTTPUpgrade.restore(&head.headers, from: response.head.headers) }
        let bodyless = request.method == .HEAD || head.status.code == 204 || head.status.code == 304 || head.status.code < 200
        // A gRPC response ends with trailers: its length is the DATA frames', not a header's.
        // A relayed response's length is what the upstream said of it, if anything.
        if !bodyless && !response.isStreamed && !(grpc && response.trailers != nil && !head.headers.contains(name: "content-length")) {
            head.headers.set(name: "content-length", value: String(response.body.readableBytes))
        }
        if request.version.major == 2 {
            // HTTP/2 has no connection-specific headers.
            head.headers.remove(name: "te")
        } else if !keepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
        } else if request.version == .http1_0 {
            head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        let body = !bodyless && response.body.readableBytes > 0 ? response.body : nil
        return FramedResponse(
            head: head, body: body, trailers: response.trailers, upgraded: response.upgraded, streamed: response.streamed,
            webEncoder: response.webEncoder)
    }
}
