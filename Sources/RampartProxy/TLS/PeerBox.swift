import Synchronization

/// What one connection's handshake concluded about its peer, filled by the verification
/// callback and read once the handshake is done.
public final class PeerBox: Sendable {
    private enum Outcome {
        case pending
        case accepted(VerifiedPeer)
        case refused(String)
    }

    private let outcome = Mutex(Outcome.pending)

    /// Creates an empty box.
    public init() {}

    func accept(_ peer: VerifiedPeer) { outcome.withLock { $0 = .accepted(peer) } }
    func refuse(_ reason: String) { outcome.withLock { $0 = .refused(reason) } }

    /// The verified peer, once the handshake accepted one.
    public var peer: VerifiedPeer? {
        outcome.withLock {
            if case .accepted(let peer) = $0 { return peer }
            return nil
        }
    }

    /// Why the peer was refused, if it was.
    public var refusal: String? {
        outcome.withLock {
            if case .refused(let reason) = $0 { return reason }
            return nil
        }
    }
}
