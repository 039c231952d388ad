import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// A gRPC call over HTTP/2 passed on as its messages come, in both directions at once, as Envoy
/// passes a stream: the call is decided on its head (no policy reads a body), then its request
/// messages go to the upstream as the client sends them and the upstream's messages come back as
/// it sends them. A server-streaming call's messages reach the client one by one, and a
/// bidirectional call whose client waits for each reply works.
///
/// Flow control holds both ways: the relay reads on from one side only while the other side
/// takes what it writes (see `pass`), so a slow reader slows its sender through HTTP/2's windows
/// rather than making the proxy hold the stream.
///
/// The side that decided the call (inbound or outbound) makes the relay with what it records of
/// the upstream's answer (`Answered`) and how it reports the exchange (`attach`); the server
/// stream that received the call runs it (`run`), and the exchange is reported when it ends,
/// with the bytes relayed each way.
final class StreamRelay: Sendable {
    /// Records what the upstream answered (who, how fast) or how it failed, and returns the
    /// response for the client, stamped as the side stamps its answers: the upstream's head, or
    /// the local answer to a failure.
    typealias Answered = @Sendable (_ outcome: Result<UpstreamResult, any Error>, _ record: inout RequestRecord) -> BufferedResponse
    /// Reports the exchange, once, when it has ended.
    typealias Report = @Sendable (_ record: inout RequestRecord, _ response: BufferedResponse) -> Void

    /// The request as forwarded.
    let head: HTTPRequestHead
    let target: UpstreamTarget
    let timeout: TimeAmount
    private let upstream: UpstreamClient
    /// For an upstream that speaks HTTP/1.1 only, the call's body is read whole, up to this.
    private let maxBodyBytes: Int
    private let answered: Answered
    /// Where the messages of a call still open are counted, and how often.
    private let metrics: ProxyMetrics
    private let reportingInterval: TimeAmount

    private struct State {
        var record: RequestRecord?
        var report: Report?
        /// The response the client got (the upstream's head, or a local answer), once it has one,
        /// and the trailers that ended it.
        var response: BufferedResponse?
        var trailers: HTTPHeaders?
        var bytesSent = 0
        var bytesReceived = 0
        /// The response ended as the upstream ended it.
        var ended = false
        /// Why the response stopped after its head, as Envoy's flag and details say it.
        var cut: (flags: String, details: String)?
        /// The client went away (reset its stream, or stopped reading) before the response ended.
        var clientGone = false
        /// The gRPC messages relayed each way.
        var requestMessages = GRPCMessageCounter()
        var responseMessages = GRPCMessageCounter()
        /// The messages already added to the metrics while the call was open.
        var reportedMessages = (request: 0, response: 0)
    }

    private let state = Mutex(State())

    init(
        upstream: UpstreamClient, target: UpstreamTarget, head: HTTPRequestHead, timeout: TimeAmount, maxBodyBytes: Int,
        metrics: ProxyMetrics, reportingInterval: TimeAmount, answered: @escaping Answered
    ) {
        self.metrics = metrics
        self.reportingInterval = reportingInterval
        self.upstream = upstream
        self.target = target
        self.head = head
        self.timeout = timeout
        self.maxBodyBytes = maxBodyBytes
        self.answered = answered
    }

    /// Hands the relay the record of the exchange so far and how to report it when it ends.
    func attach(record: RequestRecord, report: @escaping Report) {
        state.withLock { state in
            state.record = record
            state.report = report
        }
    }

    /// The client's side of the relay: the server stream the call came on, which yields what
    /// remains of its request.
    typealias RequestParts = HTTPRequestStream

    /// Relays the call, and reports it once both directions have ended. `client` is the server
    /// stream; `request` is the call as received, with what of its body came with its head;
    /// `parts` yields the rest of its body and its end.
    func run(client: any Channel, parts: RequestParts, request: BufferedRequest, cancellation: RequestCancellation) async {
        let requestHead = request.head
        state.withLock { $0.bytesReceived = request.body.readableBytes }
        // A long call's messages reach the metrics while it is open, as Istio's stats filter
        // reports a gRPC stream at each reporting interval.
        let reporting = client.eventLoop.scheduleRepeatedTask(initialDelay: reportingInterval, delay: reportingInterval) { [weak self] _ in
            self?.reportOpenMessages()
        }
        defer { reporting.cancel() }
        if target.http2 {
            state.withLock { $0.requestMessages.feed(request.body) }
            do {
                try await upstream.relayStream(to: target, timeout: timeout) { upstreamStream, responses, peer in
                    // A client that goes away resets the upstream stream, as Envoy resets it.
                    cancellation.closing(upstreamStream)
                    if request.streamEnded {
                        // The whole call came with its head (a unary call): it goes in one flush,
                        // and the response is read in this task; a failed write fails the stream,
                        // which the response's reading sees.
                        var whole: [HTTPClientRequestPart] = [.head(self.head)]
                        if request.body.readableBytes > 0 { whole.append(.body(.byteBuffer(request.body))) }
                        whole.append(.end(request.trailers))
                        PartWrites.send(whole, to: upstreamStream, promise: nil)
                        await self.relayResponse(
                            responses, peer: peer, upstreamStream: upstreamStream, client: client, requestHead: requestHead,
                            cancellation: cancellation)
                        return
                    }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            await self.relayResponse(
                                responses, peer: peer, upstreamStream: upstreamStream, client: client, requestHead: requestHead,
                                cancellation: cancellation)
                        }
                        // What came with the head goes in one flush, then the rest as it comes.
                        var first: [HTTPClientRequestPart] = [.head(self.head)]
                        if request.body.readableBytes > 0 { first.append(.body(.byteBuffer(request.body))) }
                        try await PartWrites.write(first, to: upstreamStream)
                        await self.relayRequest(parts, to: upstreamStream)
                        try await group.waitForAll()
                    }
                }
            } catch {
                await answerWhole(.failure(error), client: client, requestHead: requestHead)
            }
        } else {
            await relayWhole(client: client, parts: parts, request: request, cancellation: cancellation)
        }
        cancellation.finish()
        finish()
    }

    /// Passes the request's body and end on as they come. A client whose stream ends before its
    /// request does (a reset, or a close) has its upstream stream closed.
    private func relayRequest(_ parts: RequestParts, to upstream: any Channel) async {
        while true {
            // Nil once the stream has ended, also when the client reset it.
            guard let part = await parts.next() else {
                // The client's stream ended before its request did. Unless the response had ended
                // or been cut (and the relay closed the stream), the client went away.
                state.withLock { state in
                    if !state.ended && state.cut == nil { state.clientGone = true }
                }
                break
            }
            do {
                switch part {
                case .bodyPart(let chunk):
                    state.withLock { state in
                        state.bytesReceived += chunk.readableBytes
                        state.requestMessages.feed(chunk)
                    }
                    try await PartWrites.pass([HTTPClientRequestPart.body(.byteBuffer(chunk))], to: upstream)
                    continue
                case .end(let trailers):
                    try await PartWrites.write([HTTPClientRequestPart.end(trailers)], to: upstream)
                    return
                default:
                    continue
                }
            } catch {
                // The upstream stream failed: the response side sees it and ends too.
                break
            }
        }
        upstream.close(promise: nil)
    }

    /// Passes the upstream's response on as it comes: its head once the side has recorded and
    /// stamped it, then its messages, then its trailers. What one read of the upstream stream
    /// brought goes to the client in one flush (a unary call's head, message and trailers in one).
    /// A failure before the head is answered as the side answers failures; after it, the client's
    /// stream is reset.
    private func relayResponse(
        _ batches: UpstreamResponses, peer: VerifiedPeer?, upstreamStream: any Channel,
        client: any Channel, requestHead: HTTPRequestHead, cancellation: RequestCancellation
    ) async {
        var batch = ArraySlice<HTTPClientResponsePart>()
        var upstreamHead: HTTPResponseHead?
        do {
            while upstreamHead == nil {
                if batch.isEmpty {
                    guard let next = try await batches.next() else { throw UpstreamClosed() }
                    batch = next[...]
                    continue
                }
                // Informational heads (100, 103) are not passed on, as for the buffered exchange.
                if case .head(let head) = batch.removeFirst(), head.status.code >= 200 { upstreamHead = head }
            }
        } catch {
            await answerWhole(.failure(error), client: client, requestHead: requestHead)
            return
        }
        guard let upstreamHead else { return }
        var response = BufferedResponse(head: upstreamHead)
        if upstreamHead.headers.contains(name: "grpc-status") {
            // Trailers-only (a gRPC error): one HEADERS frame ended the stream; it goes to the
            // client the same way, whole.
            GRPCFraming.keepingStatus(&response)
            await answerWhole(.success(UpstreamResult(response: response, peer: peer)), client: client, requestHead: requestHead)
            return
        }
        response.isStreamed = true
        guard let stamped = claim(.success(UpstreamResult(response: response, peer: peer))) else { return }
        var writes: [ResponseWrite] = [.head(HTTPServing.frame(stamped, for: requestHead, keepAlive: true).head)]
        var cut: (flags: String, details: String)?
        var clientGone = false
        var ended = false
        relaying: while true {
            var trailers: HTTPHeaders?
            for part in batch {
                switch part {
                case .head:
                    continue
                case .body(let chunk):
                    state.withLock { state in
                        state.bytesSent += chunk.readableBytes
                        state.responseMessages.feed(chunk)
                    }
                    writes.append(.body(chunk))
                case .end(let end):
                    trailers = end
                    writes.append(.end(end))
                    ended = true
                }
                if ended { break }
            }
            batch = []
            do {
                // The end is awaited until the client's window has taken all of it: the stream
                // is closed after it, which must drop nothing.
                if ended {
                    try await PartWrites.write(writes, to: client)
                } else {
                    try await PartWrites.pass(writes, to: client)
                }
            } catch {
                clientGone = true
                break relaying
            }
            writes.removeAll()
            if ended {
                state.withLock { state in
                    state.trailers = trailers
                    state.ended = true
                }
                break relaying
            }
            do {
                guard let next = try await batches.next() else {
                    if cancellation.isCancelled { clientGone = true } else { cut = StreamedBody.cut(by: UpstreamClosed()) }
                    break relaying
                }
                batch = next[...]
            } catch {
                // The upstream stream closed under the relay because the client went away
                // (see `RequestCancellation`), or it failed on its own.
                if cancellation.isCancelled { clientGone = true } else { cut = StreamedBody.cut(by: error) }
                break relaying
            }
        }
        state.withLock { state in
            if let cut { state.cut = cut }
            if clientGone { state.clientGone = true }
        }
        // The response is over: a request still being sent (the client reset, or the upstream
        // answered before the request's end, as a gRPC server may) ends with the streams.
        upstreamStream.close(promise: nil)
        client.close(promise: nil)
    }

    /// For an upstream that speaks HTTP/1.1 only: the call's body is read whole (up to the
    /// proxy's limit) and the exchange made as any other.
    private func relayWhole(client: any Channel, parts: RequestParts, request: BufferedRequest, cancellation: RequestCancellation) async {
        let requestHead = request.head
        var body = request.body
        var trailers = request.trailers
        if !request.streamEnded {
            var ended = false
            reading: while let part = await parts.next() {
                switch part {
                case .bodyPart(var chunk):
                    guard body.readableBytes + chunk.readableBytes <= maxBodyBytes else {
                        await answerWhole(.failure(RelayBodyTooLarge(limit: maxBodyBytes)), client: client, requestHead: requestHead)
                        return
                    }
                    body.writeBuffer(&chunk)
                case .end(let end):
                    trailers = end
                    ended = true
                    break reading
                default:
                    continue
                }
            }
            // The stream ended (or was reset) before the request did: the client went away.
            guard ended else {
                state.withLock { $0.clientGone = true }
                return
            }
        }
        state.withLock { state in
            state.bytesReceived = body.readableBytes
            state.requestMessages.feed(body)
        }
        var forwarded = BufferedRequest(head: head, body: body, trailers: trailers)
        forwarded.cancellation = cancellation
        let outcome: Result<UpstreamResult, any Error>
        do {
            outcome = .success(try await upstream.send(forwarded, to: target, timeout: timeout))
        } catch {
            outcome = .failure(error)
        }
        await answerWhole(outcome, client: client, requestHead: requestHead)
    }

    /// Answers the client with one whole response, unless it has been answered, and ends its stream.
    private func answerWhole(_ outcome: Result<UpstreamResult, any Error>, client: any Channel, requestHead: HTTPRequestHead) async {
        guard let response = claim(outcome) else { return }
        // The upstream's whole answer holds its messages; a local one (a failure) holds none.
        if !response.isLocal { state.withLock { $0.responseMessages.feed(response.body) } }
        let framed = HTTPServing.frame(response, for: requestHead, keepAlive: true)
        var written = true
        do {
            try await HTTPServing.writeWhole(framed, on: client)
        } catch {
            written = false
        }
        state.withLock { state in
            state.ended = written
            if !written { state.clientGone = true }
        }
        client.close(promise: nil)
    }

    /// The client's answer made by the side from `outcome`, if the client has none yet.
    private func claim(_ outcome: Result<UpstreamResult, any Error>) -> BufferedResponse? {
        state.withLock { state -> BufferedResponse? in
            guard state.response == nil, var record = state.record else { return nil }
            let response = answered(outcome, &record)
            state.record = record
            state.response = response
            return response
        }
    }

    /// Adds the messages relayed since the last report to the metrics, once the upstream's answer
    /// has been recorded (which names the destination), and while the exchange is not reported.
    private func reportOpenMessages() {
        let due = state.withLock { state -> (RequestRecord, Int, Int)? in
            guard state.response != nil, state.report != nil, let record = state.record else { return nil }
            let request = state.requestMessages.count - state.reportedMessages.request
            let response = state.responseMessages.count - state.reportedMessages.response
            guard request > 0 || response > 0 else { return nil }
            state.reportedMessages = (state.requestMessages.count, state.responseMessages.count)
            return (record, request, response)
        }
        if let (record, request, response) = due { metrics.recordMessages(record, request: request, response: response) }
    }

    /// Reports the exchange.
    private func finish() {
        let ending = state.withLock { state -> (RequestRecord, Report, BufferedResponse?, State)? in
            guard let record = state.record, let report = state.report else { return nil }
            state.report = nil
            return (record, report, state.response, state)
        }
        guard let (initial, report, sent, final) = ending else { return }
        var record = initial
        record.bytesReceived = final.bytesReceived
        record.requestMessages = final.requestMessages.count
        record.responseMessages = final.responseMessages.count
        record.reportedMessages = final.reportedMessages
        guard var response = sent else {
            // Nothing was answered: the client went before the upstream's head.
            record.downstreamDisconnected = true
            report(&record, .local(.serviceUnavailable, ""))
            return
        }
        if response.isStreamed {
            response.trailers = final.trailers
            response.relayedBytes = final.bytesSent
            record.endAfterHead(cut: final.cut, clientGone: final.clientGone)
        } else if final.clientGone {
            record.downstreamDisconnected = true
        }
        report(&record, response)
    }
}

extension BufferedResponse {
    /// What a side answers for a call it relays (see `StreamRelay`): a placeholder carrying the
    /// relay, which the server stream runs. `described` records the upstream's answer or failure
    /// as the side records it; the response the client gets is then stamped as `server`'s.
    static func relaying(
        _ head: HTTPRequestHead, to target: UpstreamTarget, context: ProxyContext, server: String,
        described: @escaping StreamRelay.Answered
    ) -> BufferedResponse {
        var placeholder = BufferedResponse(head: HTTPResponseHead(version: .http2, status: .ok))
        placeholder.relay = StreamRelay(
            upstream: context.upstream, target: target, head: head,
            timeout: GRPCFraming.exchangeTimeout(head, proxy: context.upstreamTimeout), maxBodyBytes: context.maxBodyBytes,
            metrics: context.metrics, reportingInterval: context.reportingInterval
        ) { outcome, record in
            var response = described(outcome, &record)
            ResponseStamp.apply(&response, server: server, serviceTime: record.upstreamServiceTime)
            return response
        }
        return placeholder
    }
}

/// A gRPC call relayed to an HTTP/1.1 upstream, whose body had to be read whole, passed the
/// proxy's limit.
struct RelayBodyTooLarge: Error, CustomStringConvertible {
    let limit: Int
    var description: String { "request body exceeds \(limit) bytes" }
}
