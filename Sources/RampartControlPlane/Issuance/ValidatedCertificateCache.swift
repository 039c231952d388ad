import Foundation
import RampartIdentity
import RampartPKI
import Synchronization
import X509

/// Client certificates whose chain already validated against the trust bundle.
///
/// A renewing workload presents the same certificate on every request of a connection; the chain
/// check (a signature verification) is done once, while the validity window and revocation are
/// still checked on every request. Bounded: the cache empties itself when full.
final class ValidatedCertificateCache: Sendable {
    private let entries = Mutex<[String: (certificate: Certificate, identity: SPIFFEID)]>([:])
    private let capacity: Int

    init(capacity: Int = 8192) {
        self.capacity = capacity
    }

    /// The identity of `certificate` if it validated before and is inside its validity window at `now`.
    func identity(of certificate: Certificate, at now: Date) -> SPIFFEID? {
        guard certificate.notValidBefore <= now, now < certificate.notValidAfter else { return nil }
        let key = certificate.serialNumber.hexString
        return entries.withLock { entries in
            guard let entry = entries[key], entry.certificate == certificate else { return nil }
            return entry.identity
        }
    }

    /// Remembers a certificate that validated.
    func remember(_ certificate: Certificate, as identity: SPIFFEID) {
        let key = certificate.serialNumber.hexString
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = (certificate, identity)
        }
    }
}
