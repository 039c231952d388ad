import Foundation
import Testing

@testable import RampartControlPlane

@Suite("state directory checks")
struct StateDirectoryTests {
    @Test("private key files others may read are named with their mode; 0600 and 0400 keys are not")
    func looseKeys() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-state-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let state = StateDirectory(path)
        for name in ["ca-key.pem", "jwt-key.pem"] {
            #expect(FileManager.default.createFile(atPath: "\(path)/\(name)", contents: Data("key".utf8), attributes: [.posixPermissions: 0o600]))
        }
        #expect(state.looseKeyFiles().isEmpty)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: "\(path)/ca-key.pem")
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: "\(path)/jwt-key.pem")
        let loose = state.looseKeyFiles()
        #expect(loose.map(\.file) == ["\(path)/ca-key.pem"] && loose.map(\.mode) == [0o644])
    }
}
