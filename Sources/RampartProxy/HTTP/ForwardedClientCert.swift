/// The `x-forwarded-client-cert` header, as Envoy writes it for an mTLS peer:
/// `By=<this workload>;Hash=<SHA-256 of the peer's leaf>;Subject="";URI=<the peer's SPIFFE ID>`.
public enum ForwardedClientCert {
    /// The element describing one verified peer.
    public static func element(by own: String, peer: VerifiedPeer) -> String {
        element(by: own, peerFields: peerFields(peer))
    }

    /// The element from the peer's part, which a connection makes once for all its requests.
    public static func element(by own: String, peerFields: String) -> String {
        "By=\(own);\(peerFields)"
    }

    /// The peer's part of its element: `Hash=…;Subject="";URI=…`.
    public static func peerFields(_ peer: VerifiedPeer) -> String {
        "Hash=\(peer.certificateHash);Subject=\"\";URI=\(peer.spiffeIDString)"
    }

    /// The header's value after this hop: the peer's element appended to what the previous hop sent.
    public static func appending(_ element: String, to existing: String?) -> String {
        guard let existing, !existing.isEmpty else { return element }
        return "\(existing),\(element)"
    }
}
