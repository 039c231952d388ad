import Foundation
import RampartPKI
import RampartStore

extension CertificateRecord {
    /// The store's record of a certificate just signed.
    public init(_ issued: IssuedSVID, issuedAt: Date, callerIdentity: String, authMethod: AuthenticationMethod) {
        self.init(
            serial: issued.serialHex, spiffeID: issued.spiffeID.string, publicKeySHA256: issued.publicKeySHA256,
            notBefore: issued.notBefore, notAfter: issued.notAfter, issuedAt: issuedAt,
            callerIdentity: callerIdentity, authMethod: authMethod, chainPEM: issued.chainPEM.joined(separator: "\n")
        )
    }
}
