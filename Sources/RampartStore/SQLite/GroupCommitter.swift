import Dispatch
import Synchronization

/// Batches concurrent writes into one transaction, so that one fsync covers many callers.
///
/// Callers park on a continuation; a dedicated serial queue drains everything pending into one
/// synchronous transaction, resumes those callers, and repeats while more arrived meanwhile.
/// The commit path never waits for the cooperative thread pool, which is busy with signing, so
/// batches grow with load instead of queueing behind it. Every caller returns only after its
/// items are committed.
///
/// `flush` gets each caller's items as a list of its own and answers, per caller, `nil` when the
/// items were written or the error that refused them (a condition checked inside the
/// transaction, such as a renewing certificate found revoked): a refused caller's items are left
/// out and the others still commit. When the transaction itself fails, each caller's items are
/// retried on their own, so a caller gets an error only for its own bad write.
final class GroupCommitter<Item: Sendable>: Sendable {
    private struct Waiter: Sendable {
        let items: [Item]
        let continuation: CheckedContinuation<Void, any Error>

        func resume(_ refusal: (any Error)?) {
            if let refusal { continuation.resume(throwing: refusal) } else { continuation.resume() }
        }
    }

    private struct State {
        var pending: [Waiter] = []
        var draining = false
    }

    private let state = Mutex(State())
    private let queue: DispatchQueue
    private let flush: @Sendable ([[Item]]) throws -> [(any Error)?]

    init(label: String, flush: @escaping @Sendable ([[Item]]) throws -> [(any Error)?]) {
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
                let outcomes = try flush(batch.map(\.items))
                for (waiter, outcome) in zip(batch, outcomes) { waiter.resume(outcome) }
            } catch {
                // One caller's bad write (a duplicate key, say) must not fail the others batched
                // with it: commit each caller's items on its own, and fail only those that fail.
                guard batch.count > 1 else {
                    batch[0].continuation.resume(throwing: error)
                    continue
                }
                for waiter in batch {
                    do {
                        waiter.resume(try flush([waiter.items]).first ?? nil)
                    } catch {
                        waiter.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }
}
