import Foundation
import Testing

/// A policy folder with a subfolder the user cannot read: `analyze` and `apply` name it, and
/// `apply` stores nothing of the batch, so no part of a change is skipped unsaid.
@Suite("policy folders that cannot be read in full")
struct UnreadableFolderTests {
    @Test("an unreadable subfolder is an error for analyze, and apply stores nothing")
    func unreadableSubfolder() throws {
        let directory = try Paths.temporaryDirectory("unreadable-folder")
        defer {
            try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(directory)/policies/sub")
            try? FileManager.default.removeItem(atPath: directory)
        }
        let asRoot = geteuid() == 0
        let policies = "\(directory)/policies"
        try FileManager.default.createDirectory(atPath: "\(policies)/sub", withIntermediateDirectories: true)
        try ReadOnlyStoreTests.policy("top").write(toFile: "\(policies)/top.yaml", atomically: true, encoding: .utf8)
        try ReadOnlyStoreTests.policy("hidden-deny").write(toFile: "\(policies)/sub/deny.yaml", atomically: true, encoding: .utf8)
        let state = "\(directory)/state"
        let initialized = try rampart("ca", "init", "--state", state)
        #expect(initialized.succeeded, "\(initialized.stderr)")
        // Root reads every folder, so the tests run the commands as nobody there.
        for path in [directory, policies, "\(policies)/sub", state] {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        if asRoot {
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: "\(policies)/sub")
            _ = try run("chown", ["-R", "nobody", state])
        } else {
            try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: "\(policies)/sub")
        }
        func command(_ arguments: String...) throws -> CommandResult {
            asRoot
                ? try run("setpriv", ReadOnlyStoreTests.Reader.nobody + [try ReadOnlyStoreTests.Reader.binary()] + arguments)
                : try run(Paths.rampart, arguments)
        }
        let analyzed = try command("analyze", policies)
        #expect(analyzed.status == 1, "\(analyzed.stdout)\(analyzed.stderr)")
        #expect(analyzed.stdout.contains("\(policies)/sub: error RP001: the folder cannot be read"), "\(analyzed.stdout)")
        let applied = try command("apply", "-f", policies, "--state", state)
        #expect(!applied.succeeded, "\(applied.stdout)")
        #expect((applied.stdout + applied.stderr).contains("the folder cannot be read"), "\(applied.stdout)\(applied.stderr)")
        let listed = try command("get", "authorizationpolicies", "--state", state, "--json")
        #expect(listed.succeeded && !listed.stdout.contains("top"), "\(listed.stdout)\(listed.stderr)")
    }
}
