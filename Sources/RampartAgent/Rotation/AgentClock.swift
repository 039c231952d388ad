import Foundation

/// The agent's view of time, injected so tests run rotation on virtual time.
public protocol AgentClock: Sendable {
    /// The current wall-clock time (certificates are valid in wall-clock time).
    func now() -> Date
    /// Returns at or after `deadline`, or throws when the task is cancelled.
    func sleep(until deadline: Date) async throws
}

/// The system clock. Long sleeps wake at least once a minute to re-read the wall clock, so a
/// suspended host or a clock step does not postpone a renewal.
public struct SystemAgentClock: AgentClock {
    public init() {}

    public func now() -> Date { Date() }

    public func sleep(until deadline: Date) async throws {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return }
            try await Task.sleep(for: .milliseconds(Int64(min(remaining, 60) * 1000) + 1))
        }
    }
}
