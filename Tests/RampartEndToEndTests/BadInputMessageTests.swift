import Foundation
import Testing

/// Bad input named in words: which option, what is wrong, what to do; never a library's type
/// names or an error number.
@Suite("bad input said in words")
struct BadInputMessageTests {
    @Test("a state path through a file, an empty --state, a missing --csr and a key given as --ca-root")
    func messages() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-words-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "x".write(toFile: "\(directory)/file", atomically: true, encoding: .utf8)
        let throughFile = try rampart("ca", "init", "--state", "\(directory)/file/sub")
        #expect(throughFile.status == 1 && throughFile.stderr.contains("\(directory)/file is a file, not a folder"), "\(throughFile.stderr)")
        #expect(!throughFile.stderr.contains("NSCocoaErrorDomain"), "\(throughFile.stderr)")

        let empty = try rampart("token", "create", "--state", "", "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b")
        #expect(empty.status == 64 && empty.stderr.contains("--state is empty"), "\(empty.stderr)")

        let state = "\(directory)/state"
        #expect(try rampart("ca", "init", "--state", state).succeeded)
        let csr = try rampart("cert", "sign", "--state", state, "--csr", "\(directory)/missing.csr", "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b")
        #expect(csr.status == 64 && csr.stderr.contains("--csr \(directory)/missing.csr does not exist"), "\(csr.stderr)")

        let agent = try run(
            Paths.rampart,
            ["agent", "run", "--ca-address", "127.0.0.1:1", "--ca-root", "\(state)/ca-key.pem", "--out", "\(directory)/agent", "--token-file", "\(directory)/file"],
            timeout: 30)
        #expect(agent.status == 64 && agent.stderr.contains("holds a PRIVATE KEY block where a CERTIFICATE was expected"), "\(agent.stderr)")
        #expect(!agent.stderr.contains("ASN1Error") && !agent.stderr.contains(".swift:"), "\(agent.stderr)")
    }
}
