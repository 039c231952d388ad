import Dispatch
import Synchronization

/// Batches concurrent writes into one transaction, so that one fsync covers many callers.
///
/// Callers park on a continuation; a dedicated serial queue drains everything pending into one
/// synchronous transaction, resumes those callers, and repeats while more arrived meanwhile.
/// The commit path never waits for the cooperative thread pool, which is busy with signing, so
/// batches grow with load instead of queueing behind it. Every caller returns only after its
/// items are committed. When a batch fails, each caller's items are retried on their own, so a
/// caller gets an error only for its own bad write.
final class GroupCommitter<Item: Sendable>: Sendable {
    private struct Waiter: Sendable {
        let items: [Item]
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var pending: [Waiter] = []
        var draining = false
    }

    private let state = Mutex(State())
    private let queue: DispatchQueue
    private let flush: @Sendable ([Item]) throws -> Void

    init(label: String, flush: @escaping @Sendable ([Item]) throws -> Void) {
        self.queue = DispatchQueue(label: label)
        self.flush = flush
    }

    /// Returns once `items` are durably committed.
    func submit(_ items: [Item]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startDrain = state.withLock { state in
                state.pending.append(Waiter(items: items, continuation: continuation))
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if startDrain { queue.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch: [Waiter] = state.withLock { state in
                let batch = state.pending
                state.pending.removeAll(keepingCapacity: true)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                try flush(batch.flatMap(\.items))
                for waiter in batch { waiter.continuation.resume() }
            } catch {
                // One caller's bad write (a duplicate key, say) must not fail the others batched
                // with it: commit each caller's items on its own, and fail only those that fail.
                guard batch.count > 1 else {
                    batch[0].continuation.resume(throwing: error)
                    continue
                }
                for waiter in batch {
                    do {
                        try flush(waiter.items)
                        waiter.continuation.resume()
                    } catch {
                        waiter.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }
}
