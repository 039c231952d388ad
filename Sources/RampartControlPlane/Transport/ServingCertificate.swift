import Crypto
import Foundation
import NIOSSL
import RampartIdentity
import RampartPKI
import RampartStore
import SwiftASN1
import X509

/// The CA's own TLS certificate for its gRPC port, signed by the CA at start-up.
///
/// It names DNS `localhost`, IP `127.0.0.1` (and the listen address when that is another IP),
/// and the CA's SPIFFE ID. Its key lives only in memory; the certificate is recorded in the store
/// like every other certificate the CA signs.
struct ServingCertificate {
    let chain: [NIOSSLCertificate]
    let key: NIOSSLPrivateKey
    let record: CertificateRecord

    static let lifetime: TimeInterval = 365 * 24 * 3600

    static func make(issuer: SVIDIssuer, trustDomain: TrustDomain, listenHost: String, now: Date) async throws -> ServingCertificate {
        let key = P256.Signing.PrivateKey()
        let id = try SPIFFEID.workload(trustDomain: trustDomain, namespace: "istio-system", serviceAccount: "rampart-ca")
        var sans: [GeneralName] = [.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))]
        if let bytes = ipv4Bytes(listenHost), bytes != [127, 0, 0, 1], bytes != [0, 0, 0, 0] {
            sans.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        let issued = try await issuer.issue(
            publicKey: Certificate.PublicKey(key.publicKey), spiffeID: id, ttl: lifetime, now: now, extraSANs: sans
        )
        let chain = try issued.chainPEM.map { try NIOSSLCertificate(bytes: Array($0.utf8), format: .pem) }
        let nioKey = try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        let record = CertificateRecord(issued, issuedAt: now, callerIdentity: "ca", authMethod: .caInternal)
        return ServingCertificate(chain: chain, key: nioKey, record: record)
    }

    static func ipv4Bytes(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".")
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }
}
