import Foundation
import RampartControlPlane
import Testing

/// A real `rampart ca serve` process on loopback, on ports the OS picks.
final class CAProcess: @unchecked Sendable {
    let state: String
    let directory: String
    private(set) var grpcPort = 0
    private(set) var adminPort = 0
    private var process: Process?
    private let stderrFile: String

    /// Initializes a state directory with `rampart ca init` (unless `initialize` is false).
    init(label: String, trustDomain: String = "cluster.local", initArguments: [String] = [], initialize: Bool = true) throws {
        directory = try Paths.temporaryDirectory(label)
        state = "\(directory)/state"
        stderrFile = "\(directory)/ca.log"
        if initialize {
            let result = try run(Paths.rampart, ["ca", "init", "--state", state, "--trust-domain", trustDomain] + initArguments)
            guard result.succeeded else {
                throw TestFailure("rampart ca init failed: \(result.stderr)")
            }
        }
    }

    /// Starts `rampart ca serve` and waits for its ready line.
    /// Pass `grpcPort` to restart on the port an earlier run used.
    func start(extraArguments: [String] = [], grpcPort fixedPort: Int? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.rampart)
        process.arguments = ["ca", "serve", "--state", state, "--listen", "127.0.0.1:\(fixedPort ?? 0)", "--admin", "127.0.0.1:0"] + extraArguments
        let out = Pipe()
        process.standardOutput = out
        _ = FileManager.default.createFile(atPath: stderrFile, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: stderrFile)
        try process.run()
        self.process = process
        let handle = out.fileHandleForReading
        var buffer = ""
        let deadline = Date().addingTimeInterval(60)
        while !buffer.contains("\n") && Date() < deadline && process.isRunning {
            let chunk = handle.availableData
            if chunk.isEmpty { usleep(20_000); continue }
            buffer += String(decoding: chunk, as: UTF8.self)
        }
        guard let grpc = Self.port(after: "grpc=127.0.0.1:", in: buffer), let admin = Self.port(after: "admin=127.0.0.1:", in: buffer) else {
            throw TestFailure("rampart ca serve did not become ready: \(buffer) \(log)")
        }
        grpcPort = grpc
        adminPort = admin
    }

    var log: String { (try? String(contentsOfFile: stderrFile, encoding: .utf8)) ?? "" }
    var rootPEM: String { (try? String(contentsOfFile: rootPath, encoding: .utf8)) ?? "" }
    var rootPath: String { "\(state)/root-cert.pem" }

    /// A client for this CA.
    func client(chainPEM: String? = nil, keyPEM: String? = nil) -> CAClient {
        CAClient(host: "127.0.0.1", port: grpcPort, rootPEM: rootPEM, clientChainPEM: chainPEM, clientKeyPEM: keyPEM)
    }

    /// Sends SIGKILL and waits for the process to go.
    func kill9() {
        guard let process else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// Sends SIGTERM and waits.
    func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
        self.process = nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func port(after marker: String, in text: String) -> Int? {
        guard let range = text.range(of: marker) else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension CAProcess {
    /// The issuer `Tests/Interop/make_jwt.py` signs for.
    static let testJWTIssuer = "https://issuer.rampart.test"

    /// Has joserfc make a JWKS and five tokens in this CA's directory, starts the CA trusting that
    /// issuer, and returns the tokens in make_jwt.py's order (valid first).
    func startTrustingJoserfcTokens() throws -> [String] {
        let made = try run("python3", [Paths.interop.appendingPathComponent("make_jwt.py").path, directory, Self.testJWTIssuer])
        guard made.succeeded else { throw TestFailure("make_jwt.py failed: \(made.stderr)") }
        let tokens = made.stdout.split(separator: "\n").map(String.init)
        guard tokens.count == 5 else { throw TestFailure("make_jwt.py printed \(tokens.count) tokens, expected 5") }
        try start(extraArguments: ["--jwt-issuer", Self.testJWTIssuer, "--jwks", "\(directory)/jwks.json"])
        return tokens
    }
}
