import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors writing files into the state directory.
public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    /// The file that could not be written.
    public let path: String
    /// What went wrong.
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Writes private keys: created with mode 0600 from the first byte, never overwritten.
public enum SecretFile {
    /// Creates `path` with mode 0600 and writes `contents`; fails if it already exists.
    public static func write(_ contents: String, to path: String) throws {
        try createExclusive(path: path, mode: 0o600, contents: contents)
    }

    static func createExclusive(path: String, mode: mode_t, contents: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST {
                throw FileWriteError(path: path, reason: "already exists; refusing to overwrite it")
            }
            throw FileWriteError(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        fchmod(fd, mode)
        let bytes = Array(contents.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileWriteError(path: path, reason: String(cString: strerror(errno)))
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw FileWriteError(path: path, reason: "fsync failed") }
    }
}

/// Writes public files (certificates, bundles): mode 0644, never overwritten.
public enum PublicFile {
    /// Creates `path` with mode 0644 and writes `contents`; fails if it already exists.
    public static func write(_ contents: String, to path: String) throws {
        try SecretFile.createExclusive(path: path, mode: 0o644, contents: contents)
    }
}

private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buffer, count)
    #elseif canImport(Musl)
    return Musl.write(fd, buffer, count)
    #else
    return Darwin.write(fd, buffer, count)
    #endif
}
