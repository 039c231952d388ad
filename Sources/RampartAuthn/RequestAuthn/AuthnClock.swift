import Foundation

/// Where request authentication reads the time: token expiry and JWKS refresh; tests inject virtual time.
public protocol AuthnClock: Sendable {
    /// The current time.
    var now: Date { get }
}

/// The system's wall clock.
public struct SystemAuthnClock: AuthnClock {
    /// Creates the wall clock.
    public init() {}

    /// The current time.
    public var now: Date { Date() }
}
