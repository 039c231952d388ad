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

        // Files that are not text: a token is named as a token, not as PEM; a plug-in file is not called missing.
        try Data([0xff, 0xfe, 0x00, 0x81]).write(to: URL(fileURLWithPath: "\(directory)/binary"))
        let token = try run(
            Paths.rampart,
            ["agent", "run", "--ca-address", "127.0.0.1:1", "--ca-root", "\(state)/root-cert.pem", "--out", "\(directory)/agent2", "--token-file", "\(directory)/binary"],
            timeout: 30)
        #expect(token.status == 64 && token.stderr.contains("is not text") && !token.stderr.contains("PEM"), "\(token.stderr)")
        let plugin = "\(directory)/plugin"
        try FileManager.default.createDirectory(atPath: plugin, withIntermediateDirectories: true)
        for name in ["ca-key.pem", "cert-chain.pem", "root-cert.pem"] { try FileManager.default.copyItem(atPath: "\(state)/\(name)", toPath: "\(plugin)/\(name)") }
        try FileManager.default.copyItem(atPath: "\(directory)/binary", toPath: "\(plugin)/ca-cert.pem")
        let garbage = try rampart("ca", "init", "--state", "\(directory)/from-plugin", "--plugin-certs", plugin)
        #expect(garbage.status != 0 && garbage.stderr.contains("ca-cert.pem is not text") && !garbage.stderr.contains("missing"), "\(garbage.stderr)")

        // Two listeners on one address, a Workload API path that is a file, a state directory without ca.json.
        let serve = try run(Paths.rampart, ["ca", "serve", "--state", state, "--listen", "127.0.0.1:41999", "--admin", "127.0.0.1:41999"], timeout: 30)
        #expect(serve.status == 64 && serve.stderr.contains("name the same address"), "\(serve.stderr)")
        let proxyBase = ["proxy", "--workload", "w", "--namespace", "n", "--app", "127.0.0.1:9", "--ca-root", "\(state)/root-cert.pem"]
        let file = try run(Paths.rampart, proxyBase + ["--workload-api", "\(directory)/file"], timeout: 30)
        #expect(file.status == 64 && file.stderr.contains("is not a socket"), "\(file.stderr)")
        let wildcard = try run(
            Paths.rampart, proxyBase + ["--identity-dir", directory, "--inbound", "127.0.0.1:41998", "--outbound", "0.0.0.0:41998"], timeout: 30)
        #expect(wildcard.status == 64 && wildcard.stderr.contains("--inbound 127.0.0.1:41998 and --outbound 0.0.0.0:41998 name the same address"),
                "\(wildcard.stderr)")
        try FileManager.default.removeItem(atPath: "\(state)/ca.json")
        let lost = try rampart("cert", "list", "--state", state)
        #expect(lost.status == 1 && lost.stderr.contains("ca.json is missing") && lost.stderr.contains("restore ca.json from a backup"), "\(lost.stderr)")
    }
}
