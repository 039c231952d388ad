import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A process the proxy benchmark started, with its output in files of the run's directory.
///
/// Children are spawned with an empty signal mask and default signal actions (see
/// ``UnmaskedSpawn`` for why Foundation's `Process` is not used), and every live child is listed in
/// ``BenchChild/live`` so that an interrupt can stop them all.
final class BenchChild: Sendable {
    /// A short name for messages, such as `proxy A`.
    let name: String
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private let status = Mutex<Int32?>(nil)

    /// Every child not yet reaped, by pid.
    static let live = Mutex<[pid_t: String]>([:])

    private init(name: String, pid: pid_t, stdoutPath: String, stderrPath: String) {
        self.name = name
        self.pid = pid
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    /// Starts `arguments` (the first looked up in PATH unless it has a slash), with standard input
    /// from /dev/null and standard output and error in `logDirectory/<file>.out` and `.err`.
    static func spawn(name: String, file: String, arguments: [String], logDirectory: String) throws -> BenchChild {
        let stdoutPath = "\(logDirectory)/\(file).out"
        let stderrPath = "\(logDirectory)/\(file).err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var pid: pid_t = 0
        let result = UnmaskedSpawn.spawn(arguments, actions: &actions, pid: &pid)
        guard result == 0 else {
            throw BenchError("cannot start \(name) (\(arguments[0])): \(String(cString: strerror(result))); is it installed? Run ./scripts/install-deps.sh --bench")
        }
        live.withLock { $0[pid] = name }
        return BenchChild(name: name, pid: pid, stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    /// The exit status, once the child has exited: the exit code, or 128 + the signal that ended it.
    var exitStatus: Int32? {
        if let known = status.withLock({ $0 }) { return known }
        var raw: Int32 = 0
        let reaped = waitpid(pid, &raw, WNOHANG)
        guard reaped == pid else { return nil }
        let code = Self.decode(raw)
        status.withLock { $0 = code }
        _ = Self.live.withLock { $0.removeValue(forKey: pid) }
        return code
    }

    /// Whether the child is still running.
    var isRunning: Bool { exitStatus == nil }

    /// Waits for the child to exit, up to `timeout`; returns its status, or nil if it still runs.
    /// Runs a load generator to its end within `timeout` and returns its standard output; its
    /// failure to finish, or a non-zero status, is an error that shows its output.
    static func output(of arguments: [String], file: String, logDirectory: String, timeout: Duration) async throws -> String {
        let name = arguments.first ?? "?"
        let child = try spawn(name: name, file: file, arguments: arguments, logDirectory: logDirectory)
        defer { child.stop() }
        guard let status = await child.waitForExit(timeout: timeout) else {
            throw BenchError("\(name) did not finish within \(timeout):\n\(child.logTail())")
        }
        guard status == 0 else {
            throw BenchError("\(name) exited with status \(status) (\(arguments.joined(separator: " "))):\n\(child.logTail())")
        }
        return child.standardOutput
    }

    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let code = exitStatus { return code }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return exitStatus
    }

    /// Sends SIGTERM, waits up to `grace` for the child to exit, then sends SIGKILL and reaps it.
    func stop(grace: Duration = .seconds(5)) {
        guard exitStatus == nil else { return }
        let code = Self.stop(pid: pid, grace: grace)
        status.withLock { $0 = code }
    }

    /// Stops every live child (for the interrupt handler and error paths).
    static func stopAll() {
        let pids = live.withLock { Array($0.keys) }
        for pid in pids { kill(pid, SIGTERM) }
        for pid in pids { _ = stop(pid: pid, grace: .seconds(3)) }
    }

    /// Stops and reaps a live child; returns its exit code (128 + signal when a signal ended it).
    private static func stop(pid: pid_t, grace: Duration) -> Int32 {
        guard live.withLock({ $0[pid] != nil }) else { return -1 }
        defer { _ = live.withLock { $0.removeValue(forKey: pid) } }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        var raw: Int32 = 0
        while ContinuousClock.now < deadline {
            if waitpid(pid, &raw, WNOHANG) == pid { return decode(raw) }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        return waitpid(pid, &raw, 0) == pid ? decode(raw) : -1
    }

    /// A wait status as an exit code, or 128 + the signal that ended the process.
    private static func decode(_ raw: Int32) -> Int32 {
        (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// The child's standard output.
    var standardOutput: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    /// The child's standard error.
    var standardError: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The last lines of both outputs, for error messages.
    func logTail(lines: Int = 20) -> String {
        let text = (standardOutput + standardError).split(separator: "\n", omittingEmptySubsequences: true).suffix(lines)
        let body = text.isEmpty ? "    (no output)" : text.map { "    " + $0 }.joined(separator: "\n")
        return "  \(name) (pid \(pid); \(stdoutPath), \(stderrPath)):\n\(body)"
    }

    /// Waits until a line of standard output or error contains `marker`, up to `timeout`, and returns it.
    func waitForLine(containing marker: String, timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in (standardOutput + "\n" + standardError).split(separator: "\n") where line.contains(marker) {
                return String(line)
            }
            if !isRunning {
                throw BenchError("\(name) exited with status \(exitStatus ?? -1) before it was ready:\n\(logTail())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchError("\(name) did not print '\(marker)' within \(timeout):\n\(logTail())")
    }

    /// The resident set size now (VmRSS), in KiB.
    func residentKiB() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").compactMap { Int($0) }.first
        }
        return nil
    }

    /// User plus system CPU seconds used so far (all threads).
    func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: utime and stime are fields 14 and 15 of the line (11 and 12 here).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A failure of the proxy benchmark's setup or measurement, with what to do about it.
struct BenchError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
