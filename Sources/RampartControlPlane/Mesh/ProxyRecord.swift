import Foundation

/// One proxy's config stream as the registry knows it: who it is, what it registered, and how
/// far its config has got.
public struct ProxyRecord: Sendable, Equatable {
    /// The stream this record belongs to.
    public let stream: MeshRegistry.StreamID
    /// What the proxy registered.
    public let registration: ProxyRegistration
    /// The SPIFFE ID on the proxy's client certificate.
    public let spiffeID: String
    /// When that certificate expires.
    public let certificateNotAfter: Date
    /// The address the proxy connected from, used for an unspecified inbound host.
    public let peerHost: String?
    /// When the stream registered.
    public let connectedAt: Date
    /// When the stream closed; nil while it is open.
    public internal(set) var disconnectedAt: Date?
    /// The config version of the last snapshot sent.
    public internal(set) var sentConfigVersion: Int64?
    /// The nonce of the last snapshot sent.
    public internal(set) var sentNonce: String?
    /// The config version of the last snapshot the proxy accepted.
    public internal(set) var ackedConfigVersion: Int64?
    /// Why the proxy refused a snapshot, until it accepts a later one.
    public internal(set) var lastNack: String?
    /// Recently sent nonces and the config version each carried, oldest first.
    var recentNonces: [(nonce: String, version: Int64)] = []

    /// How many sent nonces an ACK may still refer to.
    static let nonceMemory = 16

    /// Creates a record for a stream that has just registered.
    public init(
        stream: MeshRegistry.StreamID, registration: ProxyRegistration, spiffeID: String, certificateNotAfter: Date, peerHost: String?, connectedAt: Date
    ) {
        self.stream = stream
        self.registration = registration
        self.spiffeID = spiffeID
        self.certificateNotAfter = certificateNotAfter
        self.peerHost = peerHost
        self.connectedAt = connectedAt
    }

    /// Whether the stream is still open.
    public var isConnected: Bool { disconnectedAt == nil }

    /// Whether the proxy has accepted `version`.
    public func isSynced(to version: Int64?) -> Bool {
        guard let version, let acked = ackedConfigVersion else { return false }
        return acked == version
    }

    mutating func sent(nonce: String, version: Int64) {
        sentNonce = nonce
        sentConfigVersion = version
        recentNonces.append((nonce, version))
        if recentNonces.count > Self.nonceMemory { recentNonces.removeFirst(recentNonces.count - Self.nonceMemory) }
    }

    /// Applies an ACK or NACK; returns the config version of the snapshot it answers, or nil
    /// when the nonce is not one recently sent.
    mutating func answered(nonce: String, accepted: Bool, detail: String) -> Int64? {
        guard let version = recentNonces.last(where: { $0.nonce == nonce })?.version else { return nil }
        if accepted {
            ackedConfigVersion = version
            lastNack = nil
        } else {
            lastNack = detail.isEmpty ? "refused config version \(version) without a reason" : detail
        }
        return version
    }

    public static func == (lhs: ProxyRecord, rhs: ProxyRecord) -> Bool {
        lhs.stream == rhs.stream && lhs.registration == rhs.registration && lhs.spiffeID == rhs.spiffeID
            && lhs.certificateNotAfter == rhs.certificateNotAfter && lhs.peerHost == rhs.peerHost && lhs.connectedAt == rhs.connectedAt
            && lhs.disconnectedAt == rhs.disconnectedAt && lhs.sentConfigVersion == rhs.sentConfigVersion && lhs.sentNonce == rhs.sentNonce
            && lhs.ackedConfigVersion == rhs.ackedConfigVersion && lhs.lastNack == rhs.lastNack
    }
}
