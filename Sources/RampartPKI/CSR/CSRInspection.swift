import Foundation
import SwiftASN1
import X509

/// What a certificate signing request asks for, once its signature has been checked.
///
/// Produced by ``CSRInspection/inspect(pem:)``; the caller decides whether the requests are
/// acceptable for the authenticated caller with ``CSRInspection/check(_:for:)``.
public struct CSRFacts: Sendable {
    /// The public key to certify.
    public let publicKey: Certificate.PublicKey
    /// Its algorithm, already known to be acceptable.
    public let keyAlgorithm: KeyAlgorithm
    /// URI SANs the CSR asks for (Istio's agents put the workload's SPIFFE ID here).
    public let requestedURIs: [String]
    /// Whether the CSR asks for `CA:true`.
    public let requestsCA: Bool
}

/// Parses and checks CSRs. Pure functions: no I/O, no clock.
public enum CSRInspection {
    /// Parses a PEM (or bare base64 DER) CSR, verifies its self-signature and checks its key.
    public static func inspect(pem: String) throws(PKIError) -> CSRFacts {
        let csr: CertificateSigningRequest
        do {
            // PEM is the common case; only text that does not start with a PEM boundary is tried
            // as bare base64 DER.
            let first = pem.utf8.first { !Self.isWhitespace($0) }
            if let first, first != UInt8(ascii: "-"),
                let der = Data(base64Encoded: pem.trimmingCharacters(in: .whitespacesAndNewlines), options: .ignoreUnknownCharacters)
            {
                csr = try CertificateSigningRequest(derEncoded: Array(der))
            } else if let der = derBytes(pem: pem) {
                // Read leniently, as openssl reads it: lines of any length (Python and others wrap
                // base64 at 76 characters, not PEM's 64).
                csr = try CertificateSigningRequest(derEncoded: der)
            } else {
                csr = try CertificateSigningRequest(pemEncoded: pem)
            }
        } catch let error as CertificateError where error.code == .unsupportedSignatureAlgorithm {
            if let algorithm = signatureAlgorithm(pem: pem), let name = Self.refusedAlgorithms[algorithm] {
                throw PKIError(.unsupportedSignatureAlgorithm, Self.refusal(name))
            }
            throw PKIError(
                .unsupportedSignatureAlgorithm,
                "CSR is signed with an algorithm the CA does not accept: sign the CSR with ECDSA or RSA PKCS#1 v1.5 and SHA-256"
            )
        } catch {
            if let bits = rsaModulusBits(pem: pem), bits < 2048 {
                throw PKIError(.unsupportedKey, "RSA key of \(bits) bits is too small: use RSA of at least 2048 bits, or EC P-256")
            }
            if let curve = ellipticCurve(pem: pem) {
                throw PKIError(
                    .unsupportedKey,
                    "the CSR's key is an EC key on curve \(curve), which the CA does not accept: use EC P-256 or P-384, or RSA of at least 2048 bits")
            }
            let trimmed = pem.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty {
                throw PKIError(.malformedCSR, "csr is empty: send a PEM-encoded PKCS#10 request (-----BEGIN CERTIFICATE REQUEST-----)")
            }
            if !trimmed.hasPrefix("-----BEGIN CERTIFICATE REQUEST-----") {
                throw PKIError(.malformedCSR, "csr is not a PEM certificate request: it must start with -----BEGIN CERTIFICATE REQUEST----- (or be the request's DER alone, in base64)")
            }
            let requests = trimmed.components(separatedBy: "-----BEGIN CERTIFICATE REQUEST-----").count - 1
            if requests > 1 {
                throw PKIError(.malformedCSR, "csr holds \(requests) certificate requests: send one request per call")
            }
            // The request's outer structure reads, but not the whole: its signature is the part at fault.
            if let algorithm = signatureAlgorithm(pem: pem) {
                if let name = Self.refusedAlgorithms[algorithm] {
                    throw PKIError(.unsupportedSignatureAlgorithm, Self.refusal(name))
                }
                throw PKIError(
                    .badCSRSignature,
                    "CSR signature cannot be read (algorithm \(algorithm)): the request was altered or damaged; regenerate it, e.g. with openssl req -new")
            }
            throw PKIError(.malformedCSR, "csr is PEM, but its body is not a well-formed DER PKCS#10 certificate request (truncated or corrupted): regenerate it, e.g. with openssl req -new")
        }
        // SHA-1 proves nothing any more; Go's x509, which Istio's CA uses, refuses it too.
        if csr.signatureAlgorithm == .sha1WithRSAEncryption {
            throw PKIError(.unsupportedSignatureAlgorithm, Self.refusal("RSA with SHA-1"))
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw PKIError(.badCSRSignature, "CSR signature does not verify against its own public key: the request was altered or signed with another key")
        }
        let algorithm: KeyAlgorithm
        switch KeyAlgorithm.classify(csr.publicKey) {
        case .success(let value): algorithm = value
        case .failure(let error): throw error
        }

        var uris: [String] = []
        var requestsCA = false
        do {
            if let request = try csr.attributes.extensionRequest {
                for ext in request.extensions {
                    switch ext.oid {
                    case .X509ExtensionID.subjectAlternativeName:
                        for name in try SubjectAlternativeNames(ext) {
                            if case .uniformResourceIdentifier(let uri) = name { uris.append(uri) }
                        }
                    case .X509ExtensionID.basicConstraints:
                        if case .isCertificateAuthority = try BasicConstraints(ext) { requestsCA = true }
                    default:
                        continue
                    }
                }
            }
        } catch {
            throw PKIError(.malformedCSR, "CSR extension request does not parse (\(error)): regenerate the CSR")
        }
        return CSRFacts(publicKey: csr.publicKey, keyAlgorithm: algorithm, requestedURIs: uris, requestsCA: requestsCA)
    }

    /// Refuses CSRs that ask for a CA certificate or for an identity other than `identity`.
    ///
    /// A CSR with no URI SAN is fine: the identity always comes from the caller.
    /// ASCII whitespace, as PEM files may carry around their boundaries.
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t")
    }

    public static func check(_ facts: CSRFacts, for identity: String) throws(PKIError) {
        if facts.requestsCA {
            throw PKIError(.caRequested, "CSR requests CA:true: workload certificates are never CAs; remove the basicConstraints CA:true extension")
        }
        for uri in facts.requestedURIs where uri != identity {
            throw PKIError(
                .identityMismatch,
                "CSR asks for identity \(uri) but the caller is authenticated as \(identity): request your own identity, or leave the URI SAN out"
            )
        }
        if facts.requestedURIs.count > 1 {
            throw PKIError(.malformedCSR, "CSR asks for \(facts.requestedURIs.count) URI SANs: an X.509-SVID has exactly one; request the workload's SPIFFE ID alone, or no URI SAN")
        }
    }

    /// The modulus size of an RSA key in a CSR that swift-crypto refused to load (it rejects small keys).
    ///
    /// Reads CertificationRequest → CertificationRequestInfo → SubjectPublicKeyInfo with SwiftASN1.
    static func rsaModulusBits(pem: String) -> Int? {
        guard let spki = publicKeyInfo(pem: pem) else { return nil }
        guard spki.algorithm == ASN1ObjectIdentifier("1.2.840.113549.1.1.1") else { return nil }
        guard let key = try? DER.parse(spki.keyBytes), case .constructed(let parts) = key.content,
            let modulus = parts.first(where: { _ in true }), case .primitive(let bytes) = modulus.content
        else { return nil }
        let significant = bytes.drop { $0 == 0 }
        guard let first = significant.first else { return nil }
        return (significant.count - 1) * 8 + (8 - first.leadingZeroBitCount)
    }
}

extension CSRInspection {

    /// Signature algorithms the CA refuses, by name, for messages that say which one a CSR used.
    static let refusedAlgorithms: [ASN1ObjectIdentifier: String] = [
        ASN1ObjectIdentifier("1.2.840.113549.1.1.10"): "RSA-PSS",
        ASN1ObjectIdentifier("1.2.840.113549.1.1.5"): "RSA with SHA-1",
        ASN1ObjectIdentifier("1.2.840.113549.1.1.4"): "RSA with MD5",
        ASN1ObjectIdentifier("1.2.840.10045.4.1"): "ECDSA with SHA-1",
        ASN1ObjectIdentifier("1.2.840.10040.4.3"): "DSA with SHA-1",
        ASN1ObjectIdentifier("2.16.840.1.101.3.4.3.2"): "DSA with SHA-256",
        ASN1ObjectIdentifier("1.3.101.112"): "Ed25519",
        ASN1ObjectIdentifier("1.3.101.113"): "Ed448",
    ]

    static func refusal(_ name: String) -> String {
        "CSR is signed with \(name), which the CA does not accept: make the request with an EC P-256 or P-384 key, or RSA of at least 2048 bits, signed with SHA-256 (openssl req -new -sha256)"
    }

    /// The DER of the one `CERTIFICATE REQUEST` block of `pem`, its base64 read whatever the line
    /// length; nil without exactly one such block, or when its body is not base64.
    static func derBytes(pem: String) -> [UInt8]? {
        let begin = "-----BEGIN CERTIFICATE REQUEST-----", end = "-----END CERTIFICATE REQUEST-----"
        guard pem.components(separatedBy: begin).count == 2, let start = pem.range(of: begin),
            let stop = pem.range(of: end, range: start.upperBound..<pem.endIndex)
        else { return nil }
        let body = pem[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(body)).map { Array($0) }
    }

    /// The subjectPublicKeyInfo of a CSR the certificate library could not read whole.
    static func publicKeyInfo(pem: String) -> SubjectPublicKeyInfoView? {
        guard let der = derBytes(pem: pem),
            let root = try? DER.parse(der),
            case .constructed(let request) = root.content,
            let info = request.first(where: { _ in true }),
            case .constructed(let infoFields) = info.content
        else { return nil }
        let fields = Array(infoFields)
        guard fields.count >= 3 else { return nil }
        return try? SubjectPublicKeyInfoView(derEncoded: fields[2])
    }

    /// The signature algorithm of a CSR whose outer structure (request info, algorithm, signature)
    /// reads as DER and whose request info holds a readable key, nil otherwise.
    static func signatureAlgorithm(pem: String) -> ASN1ObjectIdentifier? {
        guard publicKeyInfo(pem: pem) != nil, let der = derBytes(pem: pem),
            let root = try? DER.parse(der), case .constructed(let request) = root.content
        else { return nil }
        let parts = Array(request)
        guard parts.count == 3, case .constructed(let algorithm) = parts[1].content, let oid = algorithm.first(where: { _ in true }) else {
            return nil
        }
        return try? ASN1ObjectIdentifier(derEncoded: oid)
    }

    /// The named curve of an EC key the CA does not accept (P-224, secp256k1, brainpool…), by name
    /// where it has a common one and by OID otherwise; nil for other keys.
    static func ellipticCurve(pem: String) -> String? {
        guard let spki = publicKeyInfo(pem: pem), spki.algorithm == ASN1ObjectIdentifier("1.2.840.10045.2.1") else { return nil }
        guard let curve = spki.parameter else { return "(none named: explicit curve parameters)" }
        let names: [String: String] = [
            "1.2.840.10045.3.1.1": "P-192", "1.3.132.0.33": "P-224", "1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384",
            "1.3.132.0.35": "P-521", "1.3.132.0.10": "secp256k1", "1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1",
            "1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1", "1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
        ]
        let oid = curve.description
        // P-256 and P-384 are accepted: a request on them failed for another reason.
        guard oid != "1.2.840.10045.3.1.7", oid != "1.3.132.0.34" else { return nil }
        return names[oid].map { "\($0) (\(oid))" } ?? oid
    }
}

/// Just the algorithm, its parameter when that is an OID (an EC key's named curve), and the key
/// bits of a SubjectPublicKeyInfo.
struct SubjectPublicKeyInfoView: DERImplicitlyTaggable {
    static var defaultIdentifier: ASN1Identifier { .sequence }
    let algorithm: ASN1ObjectIdentifier
    let parameter: ASN1ObjectIdentifier?
    let keyBytes: [UInt8]

    init(derEncoded root: ASN1Node, withIdentifier identifier: ASN1Identifier) throws {
        (algorithm, parameter, keyBytes) = try DER.sequence(root, identifier: identifier) { nodes in
            let (algorithm, parameter) = try DER.sequence(
                try nodes.next() ?? { throw ASN1Error.invalidASN1Object(reason: "no algorithm") }(), identifier: .sequence
            ) { inner in
                let oid = try ASN1ObjectIdentifier(derEncoded: &inner)
                let parameter = inner.next().flatMap { try? ASN1ObjectIdentifier(derEncoded: $0) }
                while inner.next() != nil {}
                return (oid, parameter)
            }
            let bits = try ASN1BitString(derEncoded: &nodes)
            return (algorithm, parameter, Array(bits.bytes))
        }
    }

    func serialize(into coder: inout DER.Serializer, withIdentifier identifier: ASN1Identifier) throws {
        throw ASN1Error.invalidASN1Object(reason: "read-only view")
    }
}
