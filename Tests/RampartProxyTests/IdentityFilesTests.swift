import Foundation
import Testing

@testable import RampartProxy

/// The node agent's files as the proxy reads them: each problem named, so an operator knows
/// whether to wait for the agent or to fix a path.
@Suite("identity files")
struct IdentityFilesTests {
    @Test("a missing or misplaced directory, a missing file, and a key from another identity are each named")
    func problemsNamed() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let first = try await mesh.identity(namespace: "default", serviceAccount: "a")
        let second = try await mesh.identity(namespace: "default", serviceAccount: "b")
        _ = try ProxyIdentity(directory: first.directory)

        let mixed = "\(mesh.directory)/mixed"
        try FileManager.default.createDirectory(atPath: mixed, withIntermediateDirectories: true)
        for name in ["cert-chain.pem", "root-cert.pem"] {
            try FileManager.default.copyItem(atPath: "\(first.directory)/\(name)", toPath: "\(mixed)/\(name)")
        }
        let cases: [(directory: String, says: String)] = [
            ("\(mesh.directory)/nowhere", "does not exist yet"),
            ("\(first.directory)/cert-chain.pem", "is a file, not a folder"),
            (mixed, "has no key.pem yet"),
        ]
        for item in cases {
            do {
                _ = try ProxyIdentity(directory: item.directory)
                Issue.record("\(item.directory) was read as an identity")
            } catch {
                #expect(error.reason.contains(item.says), "\(error.reason)")
            }
        }
        try FileManager.default.copyItem(atPath: "\(second.directory)/key.pem", toPath: "\(mixed)/key.pem")
        do {
            _ = try ProxyIdentity(directory: mixed)
            Issue.record("a key of another identity was accepted")
        } catch {
            #expect(error.reason.contains("not the key of the leaf certificate"), "\(error.reason)")
        }
    }
}
