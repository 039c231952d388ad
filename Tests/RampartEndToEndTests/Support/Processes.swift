import Foundation
import Testing

/// Runs a command to completion and captures its output.
struct CommandResult: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String

    var succeeded: Bool { status == 0 }
    var trimmedOutput: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
}

enum Paths {
    /// The package root, found from this file's location.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `rampart` executable built next to the tests.
    static var rampart: String {
        packageRoot.appendingPathComponent(".build/debug/rampart").path
    }

    static var interop: URL { packageRoot.appendingPathComponent("Tests/Interop") }

    /// A fresh temporary directory.
    static func temporaryDirectory(_ label: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }
}

/// Runs `executable` with `arguments`, waits at most `timeout` seconds.
@discardableResult
func run(_ executable: String, _ arguments: [String], input: String? = nil, timeout: TimeInterval = 120) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let inputPipe = Pipe()
    process.standardInput = inputPipe
    try process.run()
    if let input { inputPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try? inputPipe.fileHandleForWriting.close()
    let outData = ReadAll(out.fileHandleForReading)
    let errData = ReadAll(err.fileHandleForReading)
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: outData.wait(), stderr: errData.wait())
}

/// Runs the rampart CLI.
@discardableResult
func rampart(_ arguments: String...) throws -> CommandResult {
    try run(Paths.rampart, arguments)
}

/// Writes `request` (the request file's YAML or JSON) to a new file in `dir`, runs
/// `rampart authz check --policies POLICIES --request FILE --json`, requires it to succeed, and
/// returns the decision object it prints.
func authzCheckJSON(policies: String, request: String, in dir: String) throws -> [String: Any] {
    let file = "\(dir)/request-\(UUID().uuidString.prefix(8)).yaml"
    try request.write(toFile: file, atomically: true, encoding: .utf8)
    let result = try rampart("authz", "check", "--policies", policies, "--request", file, "--json")
    try #require(result.succeeded, "\(result.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
}

/// Drains a pipe on a background thread so a chatty child never blocks.
final class ReadAll: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}

/// openssl, as an independent implementation.
enum OpenSSL {
    /// Makes a key and CSR in `directory`; returns (csr path, key path).
    static func csr(in directory: String, name: String, key: String = "ec", extraArguments: [String] = []) throws -> (csr: String, key: String) {
        let csr = "\(directory)/\(name).csr"
        let keyPath = "\(directory)/\(name).key"
        var arguments = ["req", "-new", "-nodes", "-subj", "/", "-keyout", keyPath, "-out", csr]
        switch key {
        case "ec": arguments += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        case "p384": arguments += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]
        case "p521": arguments += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"]
        case "p224": arguments += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-224"]
        case "secp256k1": arguments += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"]
        default: arguments += ["-newkey", key]
        }
        let result = try run("openssl", arguments + extraArguments)
        #expect(result.succeeded, "openssl req failed: \(result.stderr)")
        return (csr, keyPath)
    }

    /// `openssl verify -x509_strict` of a chain (leaf first) against a root file.
    static func verify(chainPEM: [String], root: String, in directory: String) throws -> CommandResult {
        let leaf = "\(directory)/verify-leaf-\(UUID().uuidString.prefix(6)).pem"
        let untrusted = "\(directory)/verify-untrusted-\(UUID().uuidString.prefix(6)).pem"
        try (chainPEM.first ?? "").write(toFile: leaf, atomically: true, encoding: .utf8)
        let middle = chainPEM.dropFirst().dropLast()
        var arguments = ["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", root]
        if !middle.isEmpty {
            try middle.joined(separator: "\n").write(toFile: untrusted, atomically: true, encoding: .utf8)
            arguments += ["-untrusted", untrusted]
        }
        return try run("openssl", arguments + [leaf])
    }

    /// `openssl x509 -noout -text` of the first certificate in `pem`.
    static func text(of pem: String, in directory: String) throws -> String {
        let file = "\(directory)/text-\(UUID().uuidString.prefix(6)).pem"
        try pem.write(toFile: file, atomically: true, encoding: .utf8)
        return try run("openssl", ["x509", "-noout", "-text", "-in", file]).stdout
    }
}

/// A document `get -o yaml` printed, without the `creationTimestamp` and `generation` the store
/// writes into its metadata (in flow style or as lines of their own): the document as applied.
func withoutStoreFields(_ printed: String) -> String {
    let patterns = [
        #"creationTimestamp: "[^"]*", generation: [0-9]+, "#, #"creationTimestamp: "[^"]*", generation: [0-9]+"#,
        #"(?m)^ *creationTimestamp: "[^"]*"\n *generation: [0-9]+\n"#,
    ]
    var text = printed
    for pattern in patterns {
        let expression = try! NSRegularExpression(pattern: pattern)
        text = expression.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "")
    }
    return text
}
