import ArgumentParser
import RampartAuthn

extension ExtraRootCertificates {
    /// Reads the file a `--jwks-extra-root-ca` option names; a file that cannot be used is a usage
    /// error naming the option.
    static func option(_ path: String) throws -> ExtraRootCertificates {
        do {
            return try ExtraRootCertificates(path: path)
        } catch {
            throw ValidationError("--jwks-extra-root-ca: \(error.reason)")
        }
    }
}
