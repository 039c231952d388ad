import SwiftASN1
import X509

/// Certificates sent as concatenated DER, as the SPIFFE Workload API sends chains and bundles.
enum DERCertificates {
    /// Parses every certificate in `bytes`, in order.
    ///
    /// The bytes are wrapped in a DER SEQUENCE header written by swift-asn1's serializer, so the
    /// parser itself finds where each certificate ends.
    static func parse(_ bytes: [UInt8]) throws -> [Certificate] {
        guard !bytes.isEmpty else { return [] }
        var serializer = DER.Serializer()
        serializer.appendConstructedNode(identifier: .sequence) { coder in coder.serializeRawBytes(bytes) }
        let root = try DER.parse(serializer.serializedBytes)
        return try DER.sequence(of: Certificate.self, identifier: .sequence, rootNode: root)
    }

    /// PEM text for certificates.
    static func pem(_ certificates: [Certificate]) throws -> String {
        try certificates.map { try $0.serializeAsPEM().pemString }.joined(separator: "\n") + "\n"
    }
}
