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
/// It names DNS `localhost`, IP `127.0.0.1` (and the listen address when that is another IP, `::1`
/// when it is `::`),
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
        for bytes in listenAddresses(listenHost) {
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

    /// The addresses to name beside 127.0.0.1 for a listen host: an IPv4 or IPv6 address as
    /// itself, IPv6's `::` (every address) as `::1`, the loopback clients dial; nothing for a name,
    /// 127.0.0.1 and 0.0.0.0.
    static func listenAddresses(_ host: String) -> [[UInt8]] {
        let host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            let bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return bytes == [127, 0, 0, 1] || bytes == [0, 0, 0, 0] ? [] : [bytes]
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return bytes == [UInt8](repeating: 0, count: 16) ? [[UInt8](repeating: 0, count: 15) + [1]] : [bytes]
        }
        return []
    }
}
