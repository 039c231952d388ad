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
            csr = try CertificateSigningRequest(pemEncoded: pem)
        } catch let error as CertificateError where error.code == .unsupportedSignatureAlgorithm {
            throw PKIError(
                .unsupportedSignatureAlgorithm,
                "CSR is signed with an unsupported algorithm (RSA-PSS or similar): sign the CSR with ECDSA or RSA PKCS#1 v1.5 and SHA-256"
            )
        } catch {
            let trimmed = pem.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty {
                throw PKIError(.malformedCSR, "csr is empty: send a PEM-encoded PKCS#10 request (-----BEGIN CERTIFICATE REQUEST-----)")
            }
            if !trimmed.hasPrefix("-----BEGIN CERTIFICATE REQUEST-----") {
                throw PKIError(.malformedCSR, "csr is not a PEM certificate request: it must start with -----BEGIN CERTIFICATE REQUEST-----")
            }
            throw PKIError(.malformedCSR, "csr does not parse as PKCS#10 (\(error)): regenerate it, e.g. with openssl req -new")
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
            throw PKIError(.identityMismatch, "CSR asks for \(facts.requestedURIs.count) URI SANs: an X.509-SVID has exactly one")
        }
    }
}
