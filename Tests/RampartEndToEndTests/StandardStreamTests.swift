import Foundation
import Testing

/// Standard streams that cannot be used: a closed standard input is read as empty, an error that
/// cannot be written still exits with its status, and output lost to a full or closed standard
/// output is a failure, not a success.
@Suite("closed and full standard streams")
struct StandardStreamTests {
    /// Runs `rampart` with its arguments under /bin/sh, with `redirections` appended.
    static func shell(_ arguments: [String], _ redirections: String) throws -> CommandResult {
        let quoted = ([Paths.rampart] + arguments).map { "'\($0)'" }.joined(separator: " ")
        return try run("/bin/sh", ["-c", "\(quoted) \(redirections)"], timeout: 60)
    }

    @Test("a closed standard input is refused or read as empty, never a crash")
    func closedInput() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-streams-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try rampart("ca", "init", "--state", directory).succeeded)
        let apply = try Self.shell(["apply", "-f", "-", "--state", directory], "<&-")
        #expect(apply.status == 64 && apply.stderr.contains("standard input was empty or closed"), "\(apply.status) \(apply.stderr)")
        let analyze = try Self.shell(["analyze", "-"], "<&-")
        #expect(analyze.status == 0 && analyze.stdout.contains("0 errors"), "\(analyze.status) \(analyze.stderr)")
        let check = try Self.shell(["authz", "check", "--policies", Paths.packageRoot.appendingPathComponent("policies").path, "--request", "-"], "<&-")
        #expect(check.status == 64 && check.stderr.contains("the request is empty"), "\(check.status) \(check.stderr)")
    }

    @Test("an error that cannot be written still exits with its status; output that cannot be written fails")
    func unwritableOutput() throws {
        // The same error written, unwritable and closed: the status is the same.
        let arguments = ["token", "create", "--state", "/nonexistent", "--spiffe-id", "bad"]
        let written = try Self.shell(arguments, "")
        #expect(written.status == 1 && written.stderr.contains("not an initialized CA state directory"), "\(written.status) \(written.stderr)")
        let refused = try Self.shell(arguments, "2>/dev/full")
        #expect(refused.status == written.status, "\(refused.status)")
        let closed = try Self.shell(arguments, "2>&-")
        #expect(closed.status == written.status, "\(closed.status)")
        let invalid = try Self.shell(["analyze", "--workloads"], "2>&-")
        #expect(invalid.status == 64, "\(invalid.status)")
        let full = try Self.shell(["analyze", Paths.packageRoot.appendingPathComponent("policies").path], ">/dev/full")
        #expect(full.status == 1 && full.stderr.contains("could not be written to standard output"), "\(full.status) \(full.stderr)")
        let shut = try Self.shell(["analyze", Paths.packageRoot.appendingPathComponent("policies").path], ">&-")
        #expect(shut.status == 1, "\(shut.status) \(shut.stderr)")
    }
}
