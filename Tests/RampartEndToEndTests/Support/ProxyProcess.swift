import Foundation
import Testing

/// Runs blocking work (waiting for a child process, sleeping between polls) on a thread of its
/// own, so async tests running beside it keep the cooperative pool's two threads.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// `rampart …` off the cooperative pool.
func rampartAsync(_ arguments: String...) async throws -> CommandResult {
    try await offPool { try run(Paths.rampart, arguments) }
}

/// Polls an async `condition` every 50 ms until it holds or `timeout` passes.
func eventuallyAsync(timeout: TimeInterval, _ what: String, _ condition: () async throws -> Bool) async throws {
    let limit = Date().addingTimeInterval(timeout)
    while Date() < limit {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    if try await condition() { return }
    throw TestFailure("timed out after \(Int(timeout)) s waiting for \(what)")
}

/// A long-running child process whose first line on a stream announces it is ready.
final class ServiceProcess: @unchecked Sendable {
    let process = Process()
    let logFile: String

    /// Starts `executable` and waits (at most `timeout` seconds) for a line containing `marker`
    /// in its log (stdout and stderr both go there); returns that line.
    init(_ executable: String, _ arguments: [String], logFile: String, marker: String, timeout: TimeInterval = 60) throws {
        self.logFile = logFile
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: logFile)
        process.standardError = FileHandle(forWritingAtPath: logFile)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let limit = Date().addingTimeInterval(timeout)
        while Date() < limit {
            if let line = log.split(separator: "\n").first(where: { $0.contains(marker) }) {
                readyLine = String(line)
                return
            }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        stop()
        throw TestFailure("\(executable) did not print '\(marker)' within \(Int(timeout)) s:\n\(log)")
    }

    /// The line that announced readiness.
    private(set) var readyLine = ""

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// The integer after `key=host:` or `key ` in the ready line.
    func port(after key: String) -> Int? {
        guard let range = readyLine.range(of: key) else { return nil }
        let rest = readyLine[range.upperBound...]
        let address = rest.prefix { !$0.isWhitespace }
        return Int(address.split(separator: ":").last ?? "")
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let limit = Date().addingTimeInterval(10)
        while process.isRunning && Date() < limit { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// One workload of the test mesh: its app, its agent and its proxy.
struct MeshWorkload {
    let name: String
    let spiffeID: String
    let app: ServiceProcess
    let appPort: Int
    let agent: AgentProcess
    let proxy: ServiceProcess
    let inbound: Int
    let outbound: Int
    let admin: Int
    let accessLog: String

    var identityDirectory: String { agent.out }

    /// Starts an echo app, an agent bootstrapped with a fresh token, and a proxy in front of the app.
    /// With `workloadAPI`, the proxy takes its identity from the agent's Workload API socket
    /// instead of its files.
    /// `app` names the application's script in `Tests/Interop` (given `name` as its argument);
    /// `proxyArguments` are added to the proxy's command line.
    static func start(
        name: String, namespace: String, ca: CAProcess, directory: String, workloadAPI: Bool = false, app script: String = "echo_app.py",
        proxyArguments: [String] = []
    ) async throws -> MeshWorkload {
        let spiffeID = "spiffe://cluster.local/ns/\(namespace)/sa/\(name)"
        let app = try await offPool {
            // The Python on PATH, which has the test packages (grpcio) `install-deps.sh --test` installs.
            try ServiceProcess("/usr/bin/env", ["python3", Paths.interop.appendingPathComponent(script).path, name], logFile: "\(directory)/\(name)-app.log", marker: "listening")
        }
        guard let appPort = app.port(after: "listening ") else { throw TestFailure("no port from the echo app: \(app.readyLine)") }
        let token = try await rampartAsync("token", "create", "--state", ca.state, "--spiffe-id", spiffeID).trimmedOutput
        let tokenFile = "\(directory)/\(name).token"
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let agent = AgentProcess(directory: directory, label: "\(name)-agent")
        try agent.start(ca: ca, credentialFile: tokenFile, ttl: "1h")
        try await eventually(timeout: 30, "\(name)'s agent to write its identity\n\(agent.log)") { agent.onDisk() != nil }
        let accessLog = "\(directory)/\(name)-access.log"
        let grpcPort = ca.grpcPort
        let rootPath = ca.rootPath
        let identitySource = workloadAPI ? ["--workload-api", agent.socket] : ["--identity-dir", agent.out]
        let proxy = try await offPool {
            try ServiceProcess(
            Paths.rampart,
            [
                "proxy", "--workload", name, "--namespace", namespace, "--labels", "app=\(name),version=v1", "--service", "\(name):\(appPort)",
                "--app", "127.0.0.1:\(appPort)", "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--control-plane", "127.0.0.1:\(grpcPort)", "--ca-root", rootPath, "--access-log", accessLog,
            ] + identitySource + proxyArguments,
            logFile: "\(directory)/\(name)-proxy.log", marker: "rampart proxy ready"
            )
        }
        guard let inbound = proxy.port(after: "inbound="), let outbound = proxy.port(after: "outbound="), let admin = proxy.port(after: "admin=") else {
            throw TestFailure("no ports in the proxy's ready line: \(proxy.readyLine)")
        }
        return MeshWorkload(
            name: name, spiffeID: spiffeID, app: app, appPort: appPort, agent: agent, proxy: proxy, inbound: inbound, outbound: outbound, admin: admin,
            accessLog: accessLog
        )
    }

    func stop() {
        proxy.stop()
        _ = agent.terminate()
        app.stop()
    }
}

/// curl, as an independent HTTP client.
enum Curl {
    /// Runs curl off the cooperative pool; returns the status code (0 when no HTTP response came
    /// back), the body, and curl's exit status.
    static func get(_ url: String, _ extra: [String] = []) async throws -> (code: Int, body: String, exit: Int32) {
        let result = try await offPool { try run("curl", ["-s", "-S", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}"] + extra + [url], timeout: 20) }
        var lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.popLast() ?? "") ?? 0
        return (code, lines.joined(separator: "\n"), result.status)
    }

    /// The JSON the echo app answered with.
    static func json(_ body: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }
}

/// A real Prometheus server (Debian's `prometheus`) on loopback, scraping the given admin ports.
final class PrometheusProcess: @unchecked Sendable {
    let port: Int
    let service: ServiceProcess

    init(directory: String, scrapePorts: [Int]) async throws {
        let free = try await offPool { try run("python3", ["-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"]) }
        guard let port = Int(free.trimmedOutput) else { throw TestFailure("cannot pick a port: \(free.stderr)") }
        self.port = port
        let targets = scrapePorts.map { "'127.0.0.1:\($0)'" }.joined(separator: ", ")
        let config = """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: rampart-proxies
                metrics_path: /stats/prometheus
                static_configs:
                  - targets: [\(targets)]
            """
        try config.write(toFile: "\(directory)/prometheus.yml", atomically: true, encoding: .utf8)
        let directory = directory
        service = try await offPool {
            try ServiceProcess(
            "/usr/bin/prometheus",
            [
                "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/prometheus-data",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=info",
            ],
            logFile: "\(directory)/prometheus.log", marker: "Server is ready to receive web requests", timeout: 60
            )
        }
    }

    /// The series an instant query returns: each series' labels.
    func query(_ promQL: String) async throws -> [[String: String]] {
        let result = try await Curl.get("http://127.0.0.1:\(port)/api/v1/query", ["-G", "--data-urlencode", "query=\(promQL)"])
        guard result.code == 200 else { return [] }
        let object = Curl.json(result.body)
        let data = object["data"] as? [String: Any]
        let series = data?["result"] as? [[String: Any]] ?? []
        return series.compactMap { $0["metric"] as? [String: String] }
    }

    func stop() { service.stop() }
}
