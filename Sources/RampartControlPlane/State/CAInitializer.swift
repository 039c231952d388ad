import Foundation
import RampartAuthn
import RampartIdentity
import RampartPKI
import RampartStore
import X509

/// `rampart ca init`: creates a root or takes plug-in CA files, and creates the store.
public enum CAInitializer {
    /// What `ca init` did.
    public struct Outcome: Sendable {
        /// The CA now in the state directory.
        public let authority: CertificateAuthority
        /// `self-signed` or `plugin`.
        public let origin: String
    }

    /// Initializes `state`. Refuses to touch a directory that already holds CA state. `actor` is
    /// who the audit event names (the CLI gives `admin:<user>`).
    public static func run(
        state: StateDirectory,
        trustDomain: TrustDomain,
        keyAlgorithm: KeyAlgorithm,
        pluginDirectory: String?,
        actor: String = "admin",
        now: Date = Date()
    ) async throws -> Outcome {
        let fm = FileManager.default
        let existing = ["ca.json", "rampart.sqlite", "jwt-key.pem", CAMaterial.FileName.caKey, CAMaterial.FileName.caCert, CAMaterial.FileName.rootCert]
            .filter { fm.fileExists(atPath: state.file($0)) }
        if !existing.isEmpty {
            throw ControlPlaneError(
                .stateExists,
                "\(state.path) already holds CA state (\(existing.joined(separator: ", "))): refusing to overwrite it. Use another --state directory, or move the old one away if you really mean to start over"
            )
        }

        let authority: CertificateAuthority
        let origin: String
        if let pluginDirectory {
            authority = try await CAMaterial.load(directory: pluginDirectory, now: now)
            origin = "plugin"
            if let uri = try? SVIDValidator.spiffeID(of: authority.roots[0]), uri.trustDomain != trustDomain {
                throw ControlPlaneError(.badArgument, "plug-in root names trust domain \(uri.trustDomain) but --trust-domain is \(trustDomain): pass --trust-domain \(uri.trustDomain)")
            }
        } else {
            authority = try CAMaterial.createRoot(trustDomain: trustDomain, keyAlgorithm: keyAlgorithm, now: now)
            origin = "self-signed"
        }

        // Made once the CA's material is known to be usable: a refused plug-in leaves nothing behind.
        let createdDirectory = !fm.fileExists(atPath: state.path)
        let sideFiles = ["-wal", "-shm", "-journal"].map { state.databasePath + $0 }.filter { !fm.fileExists(atPath: $0) }
        do {
            try fm.createDirectory(atPath: state.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ControlPlaneError(
                .badArgument,
                "cannot create the state directory \(state.path): \(Self.creationProblem(state.path, error)). Choose a --state path in a folder this user may write")
        }
        do {
            return try await populate(state, authority: authority, origin: origin, trustDomain: trustDomain, keyAlgorithm: keyAlgorithm, actor: actor, now: now)
        } catch {
            // A run that fails part way (a full disk, say) takes back what it wrote, so that the
            // next run is not refused as finding CA state.
            for name in written where fm.fileExists(atPath: state.file(name)) { try? fm.removeItem(atPath: state.file(name)) }
            for file in sideFiles { try? fm.removeItem(atPath: file) }
            if createdDirectory, (try? fm.contentsOfDirectory(atPath: state.path))?.isEmpty == true { try? fm.removeItem(atPath: state.path) }
            throw error
        }
    }

    /// Every file `ca init` writes into the state directory.
    static let written = [
        "ca.json", "rampart.sqlite", "jwt-key.pem", CAMaterial.FileName.caKey, CAMaterial.FileName.caCert, CAMaterial.FileName.rootCert,
        CAMaterial.FileName.certChain,
    ]

    /// Writes the CA's files and store into `state`, which exists and holds no CA state.
    private static func populate(
        _ state: StateDirectory, authority: CertificateAuthority, origin: String, trustDomain: TrustDomain, keyAlgorithm: KeyAlgorithm,
        actor: String, now: Date
    ) async throws -> Outcome {
        try CAMaterial.write(authority, to: state.path)
        do {
            try SecretFile.write(JWTSVIDSigner.generateKeyPEM(), to: state.jwtKeyPath)
        } catch {
            throw ControlPlaneError(.badArgument, "cannot write the JWT-SVID signing key: \(error)")
        }
        let config = CAConfig(trustDomain: trustDomain.name, origin: origin, createdAt: now)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try PublicFile.write(String(decoding: try encoder.encode(config), as: UTF8.self) + "\n", to: state.configPath)

        let store = try SQLiteStore(path: state.databasePath)
        for certificate in authority.chain {
            try await store.recordAuthority(
                AuthorityRecord(
                    serial: certificate.serialNumber.hexString,
                    subject: certificate.subject.description,
                    certificatePEM: try certificate.serializeAsPEM().pemString,
                    slot: .active,
                    notBefore: certificate.notValidBefore,
                    notAfter: certificate.notValidAfter,
                    createdAt: now
                )
            )
        }
        try await store.append([
            AuditEntry(
                time: now, type: .caInitialized, actor: actor, subject: authority.certificate.serialNumber.hexString,
                details: ["trust_domain": trustDomain.name, "origin": origin, "key": keyAlgorithm.rawValue]
            )
        ])
        return Outcome(authority: authority, origin: origin)
    }

    /// Why a folder cannot be made at `path`, in words: a part of the path that is a file, or
    /// the system's reason.
    static func creationProblem(_ path: String, _ error: any Error) -> String {
        var ancestor = path
        while !ancestor.isEmpty && ancestor != "/" {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: ancestor, isDirectory: &isFolder) {
                if !isFolder.boolValue { return "\(ancestor) is a file, not a folder: give a path whose folders are folders" }
                break
            }
            ancestor = (ancestor as NSString).deletingLastPathComponent
        }
        let underlying = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) }
        if let underlying { return underlying }
        let nsError = error as NSError
        guard nsError.domain == NSCocoaErrorDomain else { return ReadableError.describe(error) }
        switch nsError.code {
        case NSFileWriteNoPermissionError, NSFileReadNoPermissionError: return "permission denied"
        case NSFileWriteVolumeReadOnlyError: return "the file system is read-only"
        case NSFileWriteOutOfSpaceError: return "the disk is full"
        case NSFileWriteInvalidFileNameError, NSFileReadInvalidFileNameError: return "the path is too long, or not a valid file name"
        case NSFileNoSuchFileError, NSFileReadNoSuchFileError, NSFileWriteFileExistsError:
            return "no folder can be made there (a part of the path is missing, loops, or is a system folder such as /proc)"
        default:
            var text = ReadableError.describe(error)
            while text.hasSuffix(".") { text.removeLast() }
            return text
        }
    }
}
