import Foundation
import RampartIdentity
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The agent's output directory, in istio-agent's layout: `cert-chain.pem` (leaf first, then
/// intermediates), `key.pem` (PKCS#8, mode 0600) and `root-cert.pem` (every trusted root).
///
/// A set is written by first making all three files complete and durable under temporary names
/// in the same directory, then renaming them over the old ones back to back, then syncing the
/// directory. A reader never sees a partly written file, and the old and new sets are swapped
/// within microseconds of each other. Readers that must never pair a key with the other set's
/// certificate read the Workload API, whose every message carries a consistent set.
public struct IdentityFiles: Sendable {
    /// The directory.
    public let directory: String

    public static let certChain = "cert-chain.pem"
    public static let key = "key.pem"
    public static let rootCert = "root-cert.pem"

    /// Names the directory; it is created (mode 0755) when first written.
    public init(directory: String) {
        self.directory = (directory as NSString).standardizingPath
    }

    public func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// Writes a new set.
    public func write(svid: X509SVID, bundle: TrustBundle) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw AgentError(.output, "cannot create the output directory \(directory): \(ReadableError.describe(error))")
        }
        let files: [(name: String, contents: String, mode: mode_t)] = [
            (Self.rootCert, bundle.rootsPEM, 0o644),
            (Self.certChain, svid.chainPEM, 0o644),
            (Self.key, svid.key.pkcs8PEM, 0o600),
        ]
        var staged: [(temporary: String, final: String)] = []
        defer {
            for entry in staged { unlink(entry.temporary) }
        }
        for file in files {
            let temporary = path(".\(file.name).\(UUID().uuidString.prefix(8)).tmp")
            try Self.writeDurably(file.contents, to: temporary, mode: file.mode)
            staged.append((temporary, path(file.name)))
        }
        for entry in staged {
            guard rename(entry.temporary, entry.final) == 0 else {
                throw AgentError(.output, "cannot rename \(entry.temporary) to \(entry.final): \(String(cString: strerror(errno)))")
            }
        }
        staged.removeAll()
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Reads a set left by an earlier run, if it is complete, consistent and still valid at `now`.
    /// Returns nil with the reason when it is not usable.
    public func load(trustDomainHint: TrustDomain? = nil, now: Date) async -> Result<(X509SVID, [Certificate]), AgentError> {
        let names = [Self.certChain, Self.key, Self.rootCert]
        var texts: [String] = []
        for name in names {
            guard let text = try? String(contentsOfFile: path(name), encoding: .utf8) else {
                return .failure(AgentError(.output, "\(path(name)) is missing or unreadable"))
            }
            texts.append(text)
        }
        let roots: [Certificate]
        do {
            roots = try Certificate.allFromPEM(texts[2])
        } catch {
            return .failure(AgentError(.output, "\(path(Self.rootCert)): \(PEMFault.describe(error, expected: "a CERTIFICATE"))"))
        }
        let key: WorkloadKey
        do {
            key = try WorkloadKey(pkcs8PEM: texts[1])
        } catch let error as AgentError {
            return .failure(AgentError(.output, "\(path(Self.key)): \(error.reason)"))
        } catch {
            return .failure(AgentError(.output, "\(path(Self.key)) is not a usable private key: \(ReadableError.describe(error))"))
        }
        do {
            // The chain file was written when the certificate arrived.
            let written = (try? FileManager.default.attributesOfItem(atPath: path(Self.certChain))[.modificationDate] as? Date) ?? nil
            let svid = try await X509SVID(
                chainPEM: [texts[0]], key: key, roots: roots, now: now, receivedAt: written ?? now, source: .files(path(Self.certChain)))
            return .success((svid, roots))
        } catch let error as AgentError {
            return .failure(error)
        } catch {
            return .failure(AgentError(.output, "the files in \(directory) do not form a usable identity: \(ReadableError.describe(error))"))
        }
    }

    static func writeDurably(_ contents: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw AgentError(.output, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        fchmod(fd, mode)
        let bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { buffer in
                #if canImport(Glibc)
                Glibc.write(fd, buffer.baseAddress, buffer.count)
                #elseif canImport(Musl)
                Musl.write(fd, buffer.baseAddress, buffer.count)
                #else
                Darwin.write(fd, buffer.baseAddress, buffer.count)
                #endif
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw AgentError(.output, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            throw AgentError(.output, "cannot sync \(path): \(String(cString: strerror(errno)))")
        }
    }
}
