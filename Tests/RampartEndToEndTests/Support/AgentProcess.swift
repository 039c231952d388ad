import Foundation
import RampartPKI
import SwiftASN1
import Testing
import X509

/// A real `rampart agent` process.
final class AgentProcess: @unchecked Sendable {
    let directory: String
    let out: String
    let socket: String
    private var process: Process?
    private let logFile: String

    init(directory: String, label: String = "agent") {
        self.directory = directory
        out = "\(directory)/\(label)-out"
        socket = "\(directory)/\(label).sock"
        logFile = "\(directory)/\(label).log"
    }

    /// Starts the agent against `ca` with a bootstrap credential file.
    func start(ca: CAProcess, credentialFlag: String = "--token-file", credentialFile: String, ttl: String, extra: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.rampart)
        process.arguments = [
            "agent", "--ca-address", "127.0.0.1:\(ca.grpcPort)", "--ca-root", ca.rootPath,
            credentialFlag, credentialFile, "--out", out, "--socket", socket, "--ttl", ttl,
        ] + extra
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: logFile)
        process.standardError = FileHandle(forWritingAtPath: logFile)
        try process.run()
        self.process = process
    }

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process?.isRunning ?? false }

    /// Sends SIGTERM and returns the exit status, or nil when it did not exit within `timeout`.
    func terminate(timeout: TimeInterval = 15) -> Int32? {
        guard let process else { return nil }
        process.terminate()
        let limit = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < limit { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            self.process = nil
            return nil
        }
        self.process = nil
        return process.terminationStatus
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// The identity on disk: the leaf's serial, whether the key matches it, and the files' text.
    struct OnDisk {
        let serial: String
        let notAfter: Date
        let keyMatches: Bool
    }

    func onDisk() -> OnDisk? {
        guard let chainText = try? String(contentsOfFile: "\(out)/cert-chain.pem", encoding: .utf8),
            let keyText = try? String(contentsOfFile: "\(out)/key.pem", encoding: .utf8),
            let leaf = try? PEMDocument.parseMultiple(pemString: chainText).first.map({ try Certificate(pemDocument: $0) }),
            let key = try? Certificate.PrivateKey(pemEncoded: keyText)
        else { return nil }
        return OnDisk(serial: leaf.serialNumber.hexString, notAfter: leaf.notValidAfter, keyMatches: key.publicKey == leaf.publicKey)
    }

    /// `rampart agent status --json`, parsed.
    func status() throws -> [String: Any] {
        let result = try run(Paths.rampart, ["agent", "status", "--socket", socket, "--json"], timeout: 20)
        guard result.succeeded, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestFailure("agent status failed: \(result.stdout) \(result.stderr)")
        }
        return object
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
/// The same wait for async tests: it sleeps without holding a thread of the cooperative pool, which
/// on a 2-core machine has only two, so the test's own tasks (a Workload API stream) keep running.
func eventually(timeout: TimeInterval, _ what: String, _ condition: () throws -> Bool) async throws {
    let limit = Date().addingTimeInterval(timeout)
    while Date() < limit {
        if try condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    // One last look: a busy test runner may resume this task only after the deadline has passed.
    if try condition() { return }
    throw TestFailure("timed out after \(Int(timeout)) s waiting for \(what)")
}

func eventually(timeout: TimeInterval, _ what: String, _ condition: () throws -> Bool) throws {
    let limit = Date().addingTimeInterval(timeout)
    while Date() < limit {
        if try condition() { return }
        usleep(50_000)
    }
    if try condition() { return }
    throw TestFailure("timed out after \(Int(timeout)) s waiting for \(what)")
}
