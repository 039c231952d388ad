/// Batches concurrent writes into one transaction, so that one fsync covers many callers.
///
/// The first caller to arrive while no flush is running leads: it writes its own items and
/// everything queued behind it, wakes those callers, then hands the lead to the next waiter.
/// Every caller returns only after its items are committed (or with the commit's error).
actor GroupCommitter<Item: Sendable> {
    private enum Outcome {
        case committed
        case lead
    }

    private struct Waiter {
        let items: [Item]
        let continuation: CheckedContinuation<Outcome, any Error>
    }

    private var queue: [Waiter] = []
    private var leading = false
    private let flush: @Sendable ([Item]) async throws -> Void

    init(flush: @escaping @Sendable ([Item]) async throws -> Void) {
        self.flush = flush
    }

    /// Returns once `items` are durably committed.
    func submit(_ items: [Item]) async throws {
        if leading {
            let outcome = try await withCheckedThrowingContinuation { continuation in
                queue.append(Waiter(items: items, continuation: continuation))
            }
            if case .committed = outcome { return }
        }
        leading = true
        let followers = queue
        queue.removeAll(keepingCapacity: true)
        let batch = items + followers.flatMap(\.items)
        var failure: (any Error)?
        do {
            try await flush(batch)
        } catch {
            failure = error
        }
        for follower in followers {
            if let failure {
                follower.continuation.resume(throwing: failure)
            } else {
                follower.continuation.resume(returning: .committed)
            }
        }
        if queue.isEmpty {
            leading = false
        } else {
            queue.removeFirst().continuation.resume(returning: .lead)
        }
        if let failure { throw failure }
    }
}
