import Foundation

/// Lifetimes and skew for workload certificates. Defaults follow Istio.
public struct IssuancePolicy: Sendable, Equatable {
    /// Lifetime when the request asks for none (`validity_duration` 0): 24 hours.
    public var defaultTTL: TimeInterval
    /// The longest lifetime a request may ask for: 90 days.
    public var maxTTL: TimeInterval
    /// The shortest lifetime a request may ask for: 10 seconds.
    public var minTTL: TimeInterval
    /// How far NotBefore is backdated to absorb clock skew between hosts.
    public var backdate: TimeInterval

    /// Creates a policy; the defaults are Istio's.
    public init(
        defaultTTL: TimeInterval = 24 * 3600,
        maxTTL: TimeInterval = 90 * 24 * 3600,
        minTTL: TimeInterval = 10,
        backdate: TimeInterval = 60
    ) {
        self.defaultTTL = defaultTTL
        self.maxTTL = maxTTL
        self.minTTL = minTTL
        self.backdate = backdate
    }

    /// Resolves a requested lifetime in seconds (0 for the default) or explains why it is refused.
    public func ttl(forRequestedSeconds seconds: Int64) throws(PKIError) -> TimeInterval {
        if seconds == 0 { return defaultTTL }
        if seconds < 0 {
            throw PKIError(.badValidity, "validity_duration \(seconds)s is negative: send 0 for the default (\(Int(defaultTTL))s) or a positive number of seconds")
        }
        let requested = TimeInterval(seconds)
        if requested > maxTTL {
            throw PKIError(.badValidity, "validity_duration \(seconds)s is above the maximum of \(Int(maxTTL))s (\(Int(maxTTL / 86400)) days): ask for less")
        }
        if requested < minTTL {
            throw PKIError(.badValidity, "validity_duration \(seconds)s is below the minimum of \(Int(minTTL))s: ask for at least \(Int(minTTL))s")
        }
        return requested
    }
}
