import Foundation
import RampartIdentity
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

/// Validates X.509-SVIDs against a trust bundle: the chain, the validity window and the SPIFFE shape.
///
/// Used right after signing (as SPIRE's credential validator does) and to check a caller's
/// certificate before renewal.
public struct SVIDValidator: Sendable {
    /// The trust bundle and the intermediates, indexed once (by subject) rather than per validation.
    let roots: CertificateStore
    let intermediates: CertificateStore

    /// Creates a validator for a trust bundle and the CA's intermediates.
    public init(roots: [Certificate], intermediates: [Certificate] = []) {
        self.roots = CertificateStore(roots)
        self.intermediates = CertificateStore(intermediates)
    }

    /// Validates `leaf` at `now`, and returns the SPIFFE ID it names.
    @discardableResult
    public func validate(_ leaf: Certificate, expecting expected: SPIFFEID? = nil, at now: Date)
        async throws(PKIError) -> SPIFFEID
    {
        let id: SPIFFEID
        do {
            id = try Self.spiffeID(of: leaf)
        } catch {
            // A certificate that is no SVID of this CA is named as such first: its shape is the
            // lesser problem.
            var verifier = Verifier(rootCertificates: roots) { RFC5280Policy(fixedExpiryValidationTime: now) }
            if case .couldNotValidate = await verifier.validate(leaf: leaf, intermediates: intermediates) {
                throw PKIError(.validationFailed, "certificate does not chain to this CA's trust bundle (and \(error.reason))")
            }
            throw error
        }
        if let expected, expected != id {
            throw PKIError(.validationFailed, "certificate names \(id) but \(expected) was expected")
        }
        var verifier = Verifier(rootCertificates: roots) {
            RFC5280Policy(fixedExpiryValidationTime: now)
            SPIFFELeafPolicy()
        }
        let result = await verifier.validate(leaf: leaf, intermediates: intermediates)
        switch result {
        case .validCertificate:
            return id
        case .couldNotValidate(let failures):
            if leaf.notValidAfter <= now {
                throw PKIError(.validationFailed, "certificate for \(id) expired at \(leaf.notValidAfter)")
            }
            if leaf.notValidBefore > now {
                throw PKIError(.validationFailed, "certificate for \(id) is not valid before \(leaf.notValidBefore)")
            }
            let reasons = failures.map { "\($0.policyFailureReason)" }.joined(separator: "; ")
            throw PKIError(.validationFailed, "certificate for \(id) does not chain to this CA's trust bundle\(reasons.isEmpty ? "" : ": \(reasons)")")
        }
    }

    /// The single URI SAN of an X.509-SVID, parsed as a SPIFFE ID.
    public static func spiffeID(of certificate: Certificate) throws(PKIError) -> SPIFFEID {
        let uris: [String]
        do {
            uris = (try certificate.extensions.subjectAlternativeNames ?? SubjectAlternativeNames()).compactMap {
                if case .uniformResourceIdentifier(let uri) = $0 { return uri }
                return nil
            }
        } catch {
            throw PKIError(.badIdentity, "certificate's subjectAltName does not parse: \(error)")
        }
        guard uris.count == 1, let uri = uris.first else {
            throw PKIError(.badIdentity, "certificate has \(uris.count) URI SANs: an X.509-SVID has exactly one")
        }
        do {
            return try SPIFFEID(parsing: uri)
        } catch {
            throw PKIError(.badIdentity, "certificate's URI SAN is not a SPIFFE ID: \(error.reason)")
        }
    }
}

/// The X.509-SVID rules for a leaf: not a CA, one URI SAN, digitalSignature key usage.
struct SPIFFELeafPolicy: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [
        .X509ExtensionID.subjectAlternativeName,
        .X509ExtensionID.keyUsage,
    ]

    mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        let leaf = chain.leaf
        do {
            if case .isCertificateAuthority = try leaf.extensions.basicConstraints {
                return .failsToMeetPolicy(reason: "an X.509-SVID leaf must not be a CA")
            }
            guard let usage = try leaf.extensions.keyUsage, usage.digitalSignature else {
                return .failsToMeetPolicy(reason: "an X.509-SVID leaf must have the digitalSignature key usage")
            }
        } catch {
            return .failsToMeetPolicy(reason: "leaf extensions do not parse: \(error)")
        }
        return .meetsPolicy
    }
}
