import Foundation
import SwiftASN1
import X509

extension Certificate {
    /// The certificate as PEM (RFC 7468): its DER in base64, 64 characters a line, between the
    /// `BEGIN CERTIFICATE` and `END CERTIFICATE` lines, without a final newline.
    ///
    /// The text is the same as `serializeAsPEM().pemString`; the base64 is written by Foundation's
    /// encoder, which costs a few percent of SwiftASN1's line splitting, so the issuance path uses
    /// this one.
    public func pemText() throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        let body = Data(serializer.serializedBytes).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----"
    }
}
