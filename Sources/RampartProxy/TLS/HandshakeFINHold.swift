import NIOCore
import NIOSSL

/// Holds back a client's FIN that arrives while the server is still checking the client's
/// certificate, until the check is over.
///
/// A TLS 1.3 client's handshake is done once it has sent its Finished message, and it may send its
/// data and close its sending side right behind it (a TCP client that writes a request and
/// half-closes, carried by the other proxy as data and a close_notify). The server's handshake
/// ends only when its check of that client's certificate, which runs asynchronously, completes.
/// NIOSSL takes an end of input during the handshake for a failed handshake, so the data and the
/// close_notify, already received and waiting in the TLS handler, would be lost with the
/// connection. Placed before the TLS handler, this handler passes the FIN on only after the check,
/// once the TLS handler has resumed its handshake and decoded what came before the FIN; it then
/// leaves the pipeline. A FIN that comes while no check is running (a client gone in the middle of
/// its handshake) passes at once, and fails the handshake as before.
final class HandshakeFINHold: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private var context: ChannelHandlerContext?
    private var checking = false
    private var held = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if checking, let event = event as? ChannelEvent, event == .inputClosed {
            held = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Wraps a certificate check so that this handler knows when it runs. Call on the channel's
    /// event loop, before the TLS handler is added.
    func watching(
        _ check: @escaping NIOSSLCustomVerificationCallbackWithMetadata, on loop: any EventLoop
    ) -> NIOSSLCustomVerificationCallbackWithMetadata {
        let hold = NIOLoopBound(self, eventLoop: loop)
        return { certificates, promise in
            hold.value.checking = true
            // NIOSSL resumes its handshake in a task it schedules when the promise completes; its
            // callback was attached before this one, so the task scheduled here runs after it.
            promise.futureResult.whenComplete { _ in
                loop.assumeIsolated().execute { hold.value.checkEnded() }
            }
            check(certificates, promise)
        }
    }

    private func checkEnded() {
        checking = false
        guard let context else { return }
        if held {
            held = false
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        if context.channel.isActive { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
    }
}
