import Foundation

/// When to renew a certificate: at `notBefore + (1 − graceRatio ± jitter) × lifetime`.
///
/// With the default grace ratio of 0.5, a 24-hour certificate renews near 12 hours, as
/// istio-agent does. The jitter spreads agents that were issued together, so a fleet does not
/// renew in one burst.
public struct RenewalSchedule: Sendable, Equatable {
    /// The share of the lifetime left when renewal is due.
    public let graceRatio: Double
    /// The most the renewal point moves, as a share of the lifetime, either way.
    public let jitter: Double

    /// Creates a schedule. `graceRatio` must lie in (0, 1); `jitter` in [0, 0.25].
    public init(graceRatio: Double = 0.5, jitter: Double = 0.05) throws {
        guard graceRatio > 0, graceRatio < 1 else {
            throw AgentError(.badConfiguration, "--grace-ratio \(graceRatio) is out of range: give a number between 0 and 1 (0.5 renews at half the lifetime)")
        }
        guard jitter >= 0, jitter <= 0.25 else {
            throw AgentError(.badConfiguration, "renewal jitter \(jitter) is out of range: it must lie between 0 and 0.25")
        }
        self.graceRatio = graceRatio
        self.jitter = jitter
    }

    /// The renewal time for a certificate valid from `notBefore` to `notAfter`. `random` is a
    /// number in [0, 1) that picks the jitter.
    public func renewalTime(notBefore: Date, notAfter: Date, random: Double) -> Date {
        let lifetime = notAfter.timeIntervalSince(notBefore)
        guard lifetime > 0 else { return notBefore }
        let offset = (2 * min(max(random, 0), 1) - 1) * jitter
        // Never renew in the first or last 5% of the lifetime, whatever the settings.
        let fraction = min(max(1 - graceRatio + offset, 0.05), 0.95)
        return notBefore.addingTimeInterval(fraction * lifetime)
    }
}

/// Exponential back-off with jitter for failed renewals: about 1 s, 2 s, 4 s … up to 5 minutes.
public struct Backoff: Sendable, Equatable {
    /// The first delay.
    public let initial: TimeInterval
    /// The longest delay.
    public let maximum: TimeInterval
    /// The most a delay moves, as a share of it, either way.
    public let jitter: Double
    /// Failures since the last success.
    public private(set) var failures = 0

    /// Creates a back-off.
    public init(initial: TimeInterval = 1, maximum: TimeInterval = 300, jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The delay before the next attempt, after one more failure. `random` is in [0, 1).
    public mutating func nextDelay(random: Double) -> TimeInterval {
        let exponent = min(failures, 30)
        failures += 1
        let base = min(initial * pow(2, Double(exponent)), maximum)
        let factor = 1 + (2 * min(max(random, 0), 1) - 1) * jitter
        return min(base * factor, maximum)
    }

    /// Starts again from the first delay after a success.
    public mutating func reset() {
        failures = 0
    }
}
