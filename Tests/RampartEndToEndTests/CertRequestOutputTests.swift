import Foundation
import Testing

/// Where `cert request --out` writes: a file is replaced whole; a symbolic link is followed; a
/// device or a named pipe is written into, never replaced by a file.
@Suite("cert request --out: files, links, pipes")
struct CertRequestOutputTests {
    @Test("--out through a symbolic link, and into a named pipe, leaves the link and the pipe in place")
    func outputTargets() throws {
        let ca = try CAProcess(label: "cert-request-out")
        let id = "spiffe://cluster.local/ns/a/sa/out"
        try ca.start()
        defer { ca.stop() }
        func request(to out: String) throws -> CommandResult {
            let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", id).trimmedOutput
            let (csr, _) = try OpenSSL.csr(in: ca.directory, name: "out-\(UUID().uuidString.prefix(8))")
            return try run(
                Paths.rampart,
                ["cert", "request", "--ca", "127.0.0.1:\(ca.grpcPort)", "--root-cert", ca.rootPath, "--csr", csr, "--token", token, "--out", out],
                timeout: 30)
        }
        let manager = FileManager.default

        // A link to a file: the file it names gets the chain, and the link stays a link.
        let target = "\(ca.directory)/chain.pem", link = "\(ca.directory)/current.pem"
        try "old\n".write(toFile: target, atomically: true, encoding: .utf8)
        try manager.createSymbolicLink(atPath: link, withDestinationPath: target)
        let linked = try request(to: link)
        #expect(linked.succeeded, "\(linked.stderr)")
        #expect((try? manager.destinationOfSymbolicLink(atPath: link)) == target)
        #expect(try String(contentsOfFile: target, encoding: .utf8).hasPrefix("-----BEGIN CERTIFICATE-----"))

        // A named pipe: the reader gets the chain, and the pipe is still a pipe.
        let pipe = "\(ca.directory)/chain.fifo"
        #expect(mkfifo(pipe, 0o600) == 0)
        let captured = "\(ca.directory)/captured.pem"
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/bin/sh")
        reader.arguments = ["-c", "timeout 30 cat '\(pipe)' > '\(captured)'"]
        try reader.run()
        let piped = try request(to: pipe)
        reader.waitUntilExit()
        #expect(piped.succeeded, "\(piped.stderr)")
        let type = try manager.attributesOfItem(atPath: pipe)[.type] as? FileAttributeType
        #expect(type != nil && type != .typeRegular, "the pipe became \(String(describing: type))")
        #expect(try String(contentsOfFile: captured, encoding: .utf8).contains("-----BEGIN CERTIFICATE-----"))
    }
}
