import Foundation
import RampartAuthn
import RampartIdentity
import RampartPKI
import RampartStore

/// The CA's state directory: the plug-in CA files, `rampart.sqlite`, and `ca.json`.
public struct StateDirectory: Sendable {
    /// The directory path.
    public let path: String

    /// Names a state directory; nothing is read until asked.
    public init(_ path: String) {
        self.path = (path as NSString).standardizingPath
    }

    /// A file inside the directory.
    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// The SQLite store.
    public var databasePath: String { file("rampart.sqlite") }
    /// The trust bundle to hand out.
    public var rootCertPath: String { file(CAMaterial.FileName.rootCert) }
    /// Settings chosen at `ca init`.
    public var configPath: String { file("ca.json") }
    /// The JWT-SVID signing key (ES256), mode 0600.
    public var jwtKeyPath: String { file("jwt-key.pem") }

    /// Reads the settings, or explains that `ca init` is needed.
    public func loadConfig() throws -> CAConfig {
        guard let data = FileManager.default.contents(atPath: configPath) else {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            if exists, isDirectory.boolValue, faccessat(AT_FDCWD, path, R_OK | X_OK, AT_EACCESS) != 0 {
                throw ControlPlaneError(
                    .stateMissing,
                    "\(path) cannot be read by this user (ca init makes it mode 0700): run the command as the directory's owner, or have the owner give this user read access to it and its files")
            }
            if FileManager.default.fileExists(atPath: configPath) {
                throw ControlPlaneError(
                    .stateMissing,
                    "\(configPath) cannot be read by this user: give it read access to the state directory's files, or run the command as the directory's owner")
            }
            // The rest of an initialized directory without its settings: ca.json was lost, and
            // ca init would refuse to overwrite the CA files.
            let left = ["rampart.sqlite", CAMaterial.FileName.caCert, CAMaterial.FileName.caKey].filter { FileManager.default.fileExists(atPath: file($0)) }
            if !left.isEmpty {
                throw ControlPlaneError(
                    .stateMissing,
                    "\(configPath) is missing, though \(path) holds \(left.joined(separator: ", ")) of an initialized directory: restore ca.json from a backup (it names the trust domain, the CA's origin and when it was made)")
            }
            if exists, !isDirectory.boolValue {
                throw ControlPlaneError(
                    .stateMissing,
                    "\(path) is a file, not a CA state directory: give --state the directory 'rampart ca init --state DIR' made (it holds ca.json and rampart.sqlite)")
            }
            throw ControlPlaneError(.stateMissing, "\(path) is not an initialized CA state directory (no ca.json): run 'rampart ca init --state \(path)' first")
        }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(CAConfig.self, from: data)
        } catch {
            let why = data.isEmpty ? "it is empty" : ReadableError.describe(error)
            throw ControlPlaneError(.stateMissing, "\(configPath) does not parse (\(why)): restore it from a backup, or run 'rampart ca init' in a new directory")
        }
    }

    /// Opens the store, refusing when the directory was never initialized. Commands that only
    /// read ask for `.readOnly`, so that users who may read the directory but not write it can
    /// run them (see `SQLiteStore.Access`).
    public func openStore(_ access: SQLiteStore.Access = .readWrite) throws -> SQLiteStore {
        _ = try loadConfig()
        // An initialized directory whose store file was emptied (truncated, or replaced by an empty
        // file) would otherwise open as a new, empty store, and its records would be lost silently.
        if let size = (try? FileManager.default.attributesOfItem(atPath: databasePath))?[.size] as? NSNumber,
            size.intValue == 0
        {
            throw ControlPlaneError(
                .stateMissing,
                "\(databasePath) is empty, though \(path) was initialized: the store's records are not there. Restore the file from a backup; to start over with an empty store on purpose, initialize a new state directory with 'rampart ca init' (--plugin-certs DIR keeps this CA's keys)")
        }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: databasePath, isDirectory: &isFolder), isFolder.boolValue {
            throw ControlPlaneError(
                .stateMissing,
                "\(databasePath) is a folder, not the store: the records are not there. Move it away and restore the store file from a backup")
        }
        // So would a deleted one: `ca init` makes the store with the rest of the directory.
        if !FileManager.default.fileExists(atPath: databasePath) {
            throw ControlPlaneError(
                .stateMissing,
                "\(databasePath) is missing, though \(path) was initialized (its ca.json is there): the records of every certificate issued and the audit chain are in that file. Restore it from a backup; to start over with an empty store on purpose, initialize a new state directory with 'rampart ca init' (--plugin-certs DIR keeps this CA's keys)")
        }
        return try SQLiteStore(path: databasePath, access: access)
    }

    /// Opens the store for a command that records something (a certificate, a token, a
    /// resource): refused when the store does not record this directory's CA, or when SQLite
    /// finds a page of it damaged, so that nothing is written where it would be lost.
    public func openStoreForWriting() async throws -> SQLiteStore {
        if let problem = try await problemBeforeWriting() {
            throw ControlPlaneError(.stateMissing, problem + ": nothing is written to it, so that no record is lost. Restore the file from a backup")
        }
        return try openStore(.readWrite)
    }

    /// Why the store must not be opened to write, found without writing to it, or nil: it does
    /// not record this directory's CA, or SQLite finds a page of it damaged. Opening a store to
    /// write touches the file even when nothing is recorded (SQLite's write-ahead log, and the
    /// database library's check that the log works), so a store that is to be refused is read
    /// through a read-only connection first and left exactly as it was.
    public func problemBeforeWriting() async throws -> String? {
        let reader = try openStore(.readOnly)
        if let problem = try await foreignStoreProblem(reader) { return problem }
        let check = try await reader.quickCheck()
        guard check == ["ok"] else {
            return "the store at \(reader.path) is damaged (SQLite's quick_check: \(check.prefix(3).joined(separator: "; ")))"
        }
        return nil
    }

    /// Why the store is not this directory's, or nil: `ca init` records the CA of `ca-cert.pem`
    /// in it, so a store without that record was replaced or belongs to another CA. Nil too when
    /// `ca-cert.pem` cannot be read: loading the CA says what is wrong with it.
    public func foreignStoreProblem(_ store: SQLiteStore) async throws -> String? {
        guard let signing = (try? CAMaterial.readCertificates(path, CAMaterial.FileName.caCert))?.first else { return nil }
        let serial = signing.serialNumber.hexString
        let recorded = try await store.authorities().map(\.serial)
        guard !recorded.contains(serial) else { return nil }
        let found = recorded.isEmpty ? "records no CA at all" : "records other CAs (serials \(recorded.prefix(3).joined(separator: ", ")))"
        return "the store at \(store.path) \(found), not the CA of \(file(CAMaterial.FileName.caCert)) (serial \(serial)): it was replaced, or belongs to another CA. Restore this directory's rampart.sqlite from a backup, or put back the CA files it was made with"
    }

    /// The private key files (`ca-key.pem`, `jwt-key.pem`) whose mode lets users other than the
    /// owner read or write them, with that mode: `ca init` makes them 0600, plug-in files copied in
    /// by hand may not be.
    public func looseKeyFiles() -> [(file: String, mode: Int)] {
        [file(CAMaterial.FileName.caKey), jwtKeyPath].compactMap { path in
            guard let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int,
                mode & 0o077 != 0
            else { return nil }
            return (path, mode & 0o777)
        }
    }

    /// Loads the JWT-SVID signing key. A state directory initialized before JWT-SVIDs existed has
    /// none; one is then created (mode 0600) and `created` is true.
    public func loadJWTSigner() async throws -> (signer: JWTSVIDSigner, created: Bool) {
        _ = try loadConfig()
        var created = false
        if !FileManager.default.fileExists(atPath: jwtKeyPath) {
            do {
                try SecretFile.write(JWTSVIDSigner.generateKeyPEM(), to: jwtKeyPath)
                created = true
            } catch {
                throw ControlPlaneError(.badArgument, "cannot create the JWT-SVID signing key \(jwtKeyPath): \(error)")
            }
        }
        guard let pem = try? String(contentsOfFile: jwtKeyPath, encoding: .utf8) else {
            throw ControlPlaneError(.stateMissing, "\(jwtKeyPath) cannot be read: check its owner and mode (0600)")
        }
        do {
            return (try await JWTSVIDSigner(privateKeyPEM: pem), created)
        } catch {
            throw ControlPlaneError(.stateMissing, "\(jwtKeyPath): \(error.reason); restore it from backup, or move it away to have a new key made (tokens signed with the old key then stop validating)")
        }
    }

    /// Loads the signing CA from the directory's plug-in layout.
    public func loadAuthority(now: Date) async throws -> CertificateAuthority {
        _ = try loadConfig()
        return try await CAMaterial.load(directory: path, now: now)
    }
}

/// Settings chosen at `ca init`, kept in `ca.json`.
public struct CAConfig: Codable, Sendable, Equatable {
    /// The trust domain identities are issued in.
    public var trustDomain: String
    /// Where the CA came from: `self-signed` or `plugin`.
    public var origin: String
    /// When the directory was initialized.
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case trustDomain = "trust_domain"
        case origin
        case createdAt = "created_at"
    }

    /// The trust domain, parsed.
    public func parsedTrustDomain() throws -> TrustDomain {
        do {
            return try TrustDomain(trustDomain)
        } catch {
            throw ControlPlaneError(.stateMissing, "ca.json trust_domain \"\(trustDomain)\" is invalid: \(error.reason)")
        }
    }
}
