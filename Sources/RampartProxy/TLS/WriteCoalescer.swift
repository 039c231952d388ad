import NIOCore

/// Joins the buffers written between two flushes into one, in front of a TLS handler.
///
/// An HTTP/1.1 message leaves its encoder as several buffers (the head, the body, the end). Given
/// them apart, TLS seals each as a record of its own; joined, the message is one record, one
/// encryption and one write into the connection's output.
///
/// A buffer of a full record's payload (16 KiB) or more goes on as it is, after what was joined
/// before it: joining it would copy it (a body of megabytes, each part of an upload) to save at
/// most one small record.
final class WriteCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// TLS's largest record payload: a buffer this long or longer is not joined.
    static let passThroughBytes = 16 * 1024

    private var pending: ByteBuffer?
    private var promises: [EventLoopPromise<Void>] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .byteBuffer(var buffer):
            if buffer.readableBytes >= Self.passThroughBytes {
                writePending(context: context)
                context.write(data, promise: promise)
                return
            }
            if pending == nil {
                pending = buffer
            } else {
                pending!.writeBuffer(&buffer)
            }
            if let promise { promises.append(promise) }
        case .fileRegion:
            writePending(context: context)
            context.write(data, promise: promise)
        }
    }

    func flush(context: ChannelHandlerContext) {
        writePending(context: context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input {
            // Writes never flushed fail on close, as the channel fails its own.
            pending = nil
            let waiting = promises
            promises.removeAll()
            for waiter in waiting { waiter.fail(ChannelError.ioOnClosedChannel) }
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        writePending(context: context)
    }

    private func writePending(context: ChannelHandlerContext) {
        guard let buffer = pending else { return }
        pending = nil
        switch promises.count {
        case 0:
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
        case 1:
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promises[0])
            promises.removeAll(keepingCapacity: true)
        default:
            let waiting = promises
            promises.removeAll(keepingCapacity: true)
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { result in
                for waiter in waiting { waiter.completeWith(result) }
            }
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: written)
        }
    }
}
