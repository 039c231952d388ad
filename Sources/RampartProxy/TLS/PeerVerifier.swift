import Crypto
import Foundation
import NIOCore
import NIOSSL
import RampartIdentity
import RampartPKI
import X509

/// The peer a TLS handshake proved, once its X.509-SVID was verified.
public struct VerifiedPeer: Sendable, Hashable {
    /// The SPIFFE ID in the peer's URI SAN.
    public let spiffeID: SPIFFEID
    /// The leaf's serial, normalized as the CA's store spells it.
    public let serial: String
    /// SHA-256 of the leaf's DER, lower-case hex (the `Hash` of `x-forwarded-client-cert`).
    public let certificateHash: String
    /// The SPIFFE ID as text, spelled once per connection rather than per request.
    public let spiffeIDString: String

    /// Creates a verified peer.
    public init(spiffeID: SPIFFEID, serial: String, certificateHash: String) {
        self.spiffeID = spiffeID
        self.serial = serial
        self.certificateHash = certificateHash
        self.spiffeIDString = spiffeID.string
    }
}

/// Verifies a peer's certificate chain as an X.509-SVID of this mesh: it chains to the trust
/// bundle, is in its validity window, names exactly one SPIFFE ID, is not revoked and, when the
/// caller expects particular identities, names one of them.
public struct PeerVerifier: Sendable {
    /// The mesh's trust bundle.
    public let roots: [Certificate]
    /// Unexpired revoked certificates.
    public let revoked: RevocationList
    /// The identities the peer may have; `nil` accepts any identity of the trust bundle.
    public let expected: Set<String>?
    /// What the peer's certificate is used for here: a client's (inbound) or a server's
    /// (outbound). A leaf whose extended key usage does not list it (or `any`) is refused, as
    /// RFC 5280 §4.2.1.12 restricts it and `openssl verify -purpose` checks it.
    public let usage: ExtendedKeyUsage.Usage

    /// Creates a verifier; `expected` is given for a server (outbound), which also makes the
    /// usage checked the server's.
    public init(roots: [Certificate], revoked: RevocationList, expected: Set<String>? = nil, usage: ExtendedKeyUsage.Usage? = nil) {
        self.roots = roots
        self.revoked = revoked
        self.expected = expected
        self.usage = usage ?? (expected == nil ? .clientAuth : .serverAuth)
    }

    /// Verifies a chain, leaf first, in DER.
    public func verify(chainDER: [[UInt8]], now: Date) async throws(ProxyError) -> VerifiedPeer {
        guard let leafDER = chainDER.first else {
            throw ProxyError(.peerRefused, "the peer presented no certificate; mutual TLS needs a workload certificate")
        }
        let leaf: Certificate
        let intermediates: [Certificate]
        do {
            leaf = try Certificate(derEncoded: leafDER)
            intermediates = try chainDER.dropFirst().map { try Certificate(derEncoded: $0) }
        } catch {
            throw ProxyError(.peerRefused, "the peer's certificate does not parse: \(error)")
        }
        let id: SPIFFEID
        do {
            id = try await SVIDValidator(roots: roots, intermediates: intermediates).validate(leaf, at: now)
        } catch {
            throw ProxyError(.peerRefused, "the peer's certificate is not a valid X.509-SVID of this mesh: \(error.reason)")
        }
        return try admit(leaf, der: leafDER, id: id)
    }

    /// Checks the peer of a resumed TLS session, whose certificate the session carries: no
    /// certificate message is sent, so the verification callback does not run. The chain was
    /// verified when the session was made, by a full handshake on the same TLS context (session
    /// tickets and the session cache belong to one context, which is built with the trust bundle
    /// and replaced with it); what can have changed since is checked again: the validity window,
    /// revocation and the identities expected.
    public func verifyResumed(leafDER: [UInt8], now: Date) throws(ProxyError) -> VerifiedPeer {
        let leaf: Certificate
        let id: SPIFFEID
        do {
            leaf = try Certificate(derEncoded: leafDER)
            id = try SVIDValidator.spiffeID(of: leaf)
        } catch {
            throw ProxyError(.peerRefused, "the resumed session's certificate is not an X.509-SVID: \((error as? PKIError)?.reason ?? "\(error)")")
        }
        if leaf.notValidAfter <= now {
            throw ProxyError(.peerRefused, "the resumed session's certificate for \(id) expired at \(leaf.notValidAfter); the client must make a full handshake with a current certificate")
        }
        if leaf.notValidBefore > now {
            throw ProxyError(.peerRefused, "the resumed session's certificate for \(id) is not valid before \(leaf.notValidBefore)")
        }
        return try admit(leaf, der: leafDER, id: id)
    }

    /// The checks after the chain: the extended key usage, revocation and the expected identities.
    private func admit(_ leaf: Certificate, der leafDER: [UInt8], id: SPIFFEID) throws(ProxyError) -> VerifiedPeer {
        if let purposes = try? leaf.extensions.extendedKeyUsage, !purposes.contains(usage), !purposes.contains(.any) {
            let role = usage == .clientAuth ? "client" : "server"
            throw ProxyError(
                .peerRefused,
                "the peer's certificate for \(id) may not be used as a TLS \(role) certificate: its extended key usage does not list \(role) authentication")
        }
        let serial = leaf.serialNumber.compactHex
        if revoked.contains(serial: serial) {
            throw ProxyError(.peerRefused, "the peer's certificate \(serial) for \(id) was revoked by the CA")
        }
        if let expected, !expected.contains(id.string) {
            throw ProxyError(
                .peerRefused,
                "the peer presented \(id), which is not an identity the registry expects for this service (\(expected.sorted().joined(separator: ", ")))"
            )
        }
        let hash = SHA256.hash(data: leafDER).map { String(format: "%02x", $0) }.joined()
        return VerifiedPeer(spiffeID: id, serial: serial, certificateHash: hash)
    }

    /// The NIOSSL verification callback: verifies asynchronously, records the verified peer (or
    /// the refusal) in `box`, and completes the handshake accordingly.
    public func callback(box: PeerBox) -> NIOSSLCustomVerificationCallbackWithMetadata {
        let verifier = self
        return { certificates, promise in
            let chain: [[UInt8]]
            do {
                chain = try certificates.map { try $0.toDERBytes() }
            } catch {
                box.refuse("the peer's certificate cannot be serialized: \(error)")
                promise.succeed(.failed)
                return
            }
            promise.completeWithTask {
                do {
                    let peer = try await verifier.verify(chainDER: chain, now: Date())
                    box.accept(peer)
                    return .certificateVerified(VerificationMetadata(nil))
                } catch {
                    box.refuse((error as? ProxyError)?.reason ?? "\(error)")
                    return .failed
                }
            }
        }
    }
}
