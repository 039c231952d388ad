import NIOCore

/// A task executor that runs jobs on one NIO event loop.
///
/// Each accepted connection's task prefers the executor of the event loop its channel lives on,
/// and takes its upstream connections from that loop's pool. Its reads, its writes and the
/// upstream exchanges it waits for then all complete on one thread, so a request resumes its
/// task without waking another thread, the way a proxy worker owns its connections. Decisions
/// stay in async code; only the thread that runs it changes.
final class EventLoopExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `loop` is immutable, and event loops are thread-safe.
    let loop: any EventLoop

    init(_ loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

extension EventLoop {
    /// Runs `body` at once when called on this loop, otherwise as one task on it: work for a
    /// channel's handlers from a task that may run on another thread.
    func runOnLoop(_ body: @escaping @Sendable () -> Void) {
        if inEventLoop {
            body()
        } else {
            execute(body)
        }
    }
}
