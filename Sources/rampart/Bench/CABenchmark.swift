import ArgumentParser
import Crypto
import Foundation
import Logging
import RampartControlPlane
import RampartIdentity
import RampartPKI
import RampartStore
import X509

#if canImport(Glibc)
import Glibc
#endif

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print their figures.",
        subcommands: [CABench.self, RenewBench.self, AuthzBench.self, ProxyBench.self]
    )
}

/// `rampart bench ca`: a CA on loopback driven end to end over gRPC/TLS by concurrent renewing clients.
struct CABench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Drive a CA on loopback end to end (gRPC over TLS, CSR checks, signing, durable commit) and compare with openssl speed."
    )

    @Option(parsing: .unconditional, help: "Seconds to drive the CA.")
    var duration: Int = 10

    @Option(parsing: .unconditional, help: "Concurrent clients, each on its own mTLS connection.")
    var concurrency: Int = 32

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Skip the openssl speed comparison.")
    var noOpenssl = false

    @Flag(help: "Then drive the CA's trust-bundle call (no signing, no store) with the same clients, as the transport's own cost.")
    var baseline = false

    func validate() throws {
        guard (1...600).contains(duration) else { throw ValidationError("--duration must be 1…600 seconds") }
        guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1…1024") }
    }

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let state = StateDirectory(directory)
        let trustDomain = TrustDomain.clusterLocal
        _ = try await CAInitializer.run(state: state, trustDomain: trustDomain, keyAlgorithm: .ecP256, pluginDirectory: nil)

        // Clients: keys, CSRs and their first certificates are made before the clock starts.
        let now = Date()
        let issuer = try SVIDIssuer(authority: try await state.loadAuthority(now: now))
        let store = try state.openStore()
        var credentials: [(chain: String, key: String)] = []
        var csrs: [String] = []
        let rootPEM = try String(contentsOfFile: state.rootCertPath, encoding: .utf8)
        for index in 0..<concurrency {
            let key = P256.Signing.PrivateKey()
            let id = try SPIFFEID.workload(trustDomain: trustDomain, namespace: "bench", serviceAccount: "client-\(index)")
            let issued = try await issuer.issue(publicKey: Certificate.PublicKey(key.publicKey), spiffeID: id, ttl: 3600, now: now)
            try await store.recordIssued(
                [CertificateRecord(issued, issuedAt: now, callerIdentity: "admin", authMethod: .admin)],
                audit: []
            )
            let csr = try CertificateSigningRequest(
                version: .v1, subject: DistinguishedName(), privateKey: Certificate.PrivateKey(key),
                attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256
            )
            csrs.append(try csr.serializeAsPEM().pemString)
            credentials.append((issued.chainPEM.joined(separator: "\n"), key.pemRepresentation))
        }

        // The CA runs as its own process, as in production, so that it does not share an event
        // loop group or thread pool with the clients driving it.
        let ca = try CAChildProcess.start(state: state.path)
        defer { ca.stop() }
        let clients = credentials.map {
            CAClient(host: "127.0.0.1", port: ca.grpcPort, rootPEM: rootPEM, clientChainPEM: $0.chain, clientKeyPEM: $0.key)
        }
        let requests = csrs
        let result = try await Self.measured(ca) {
            try await Self.drive(clients: clients, seconds: duration) { connection, index in
                try await connection.createCertificate(csrPEM: requests[index], validitySeconds: 3600).count >= 2
            }
        }
        var trustBundleCalls: BenchResult?
        if baseline {
            trustBundleCalls = try await Self.measured(ca) {
                try await Self.drive(clients: clients, seconds: duration) { connection, _ in
                    try await !connection.trustBundle().x509Authorities.isEmpty
                }
            }
        }

        var speed: OpenSSLSpeed?
        if !noOpenssl { speed = OpenSSLSpeed.measure() }
        report(result, baseline: trustBundleCalls, speed: speed)
    }

    /// Runs `drive` and adds the CPU time the CA process and this process (the clients) used.
    static func measured(_ ca: CAChildProcess, _ drive: () async throws -> BenchResult) async throws -> BenchResult {
        let caBefore = ca.cpuSeconds()
        let clientsBefore = ownCPUSeconds()
        var result = try await drive()
        if let before = caBefore, let after = ca.cpuSeconds() { result.caCPUSeconds = after - before }
        result.clientCPUSeconds = ownCPUSeconds() - clientsBefore
        return result
    }

    /// User plus system CPU seconds this process has used, all threads.
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let seconds = { (time: timeval) in Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    struct BenchResult: Sendable {
        var issued: Int
        var failed: Int
        var elapsed: Double
        var latencies: [Double]
        var firstError: String?
        /// CPU seconds used meanwhile by the CA process and by this process's clients.
        var caCPUSeconds: Double?
        var clientCPUSeconds: Double?

        /// Calls per second and CPU milliseconds per call, for the report.
        var perSecond: Double { Double(issued) / max(elapsed, 0.001) }
        var caCPUMillisecondsPerCall: Double? { caCPUSeconds.map { $0 * 1000 / Double(max(issued, 1)) } }
        var clientCPUMillisecondsPerCall: Double? { clientCPUSeconds.map { $0 * 1000 / Double(max(issued, 1)) } }
    }

    /// Each client calls `call` (its connection and index; true when the answer is complete) back
    /// to back until `seconds` have passed.
    static func drive(
        clients: [CAClient], seconds: Int, call: @escaping @Sendable (CAClient.Connection, Int) async throws -> Bool
    ) async throws -> BenchResult {
        let start = ContinuousClock.now
        let deadline = start + .seconds(seconds)
        let parts = try await withThrowingTaskGroup(of: BenchResult.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    var part = BenchResult(issued: 0, failed: 0, elapsed: 0, latencies: [], firstError: nil)
                    try await client.withConnection { connection in
                        // Bounded: the deadline, and at most a million requests per client.
                        var remaining = 1_000_000
                        while ContinuousClock.now < deadline && remaining > 0 {
                            remaining -= 1
                            let began = ContinuousClock.now
                            do {
                                if try await call(connection, index) { part.issued += 1 } else { part.failed += 1 }
                            } catch {
                                part.failed += 1
                                if part.firstError == nil { part.firstError = "\(error)" }
                            }
                            let took = ContinuousClock.now - began
                            part.latencies.append(Double(took.components.seconds) * 1000 + Double(took.components.attoseconds) / 1e15)
                        }
                    }
                    return part
                }
            }
            var total = BenchResult(issued: 0, failed: 0, elapsed: 0, latencies: [], firstError: nil)
            for try await part in group {
                total.issued += part.issued
                total.failed += part.failed
                total.latencies += part.latencies
                total.firstError = total.firstError ?? part.firstError
            }
            return total
        }
        var result = parts
        let elapsed = ContinuousClock.now - start
        result.elapsed = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return result
    }

    /// Prints the run, and `baseline` (the same clients on the trust-bundle call) when measured.
    func report(_ result: BenchResult, baseline: BenchResult?, speed: OpenSSLSpeed?) {
        let sorted = result.latencies.sorted()
        let percentile: (Double) -> Double = { p in
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
        }
        let perSecond = result.perSecond
        let milliseconds = { (value: Double) in (value * 1000).rounded() / 1000 }
        var object: [String: Any] = [
            "per_second": (perSecond * 10).rounded() / 10,
            "issued": result.issued,
            "failed": result.failed,
            "p50_ms": (percentile(0.50) * 1000).rounded() / 1000,
            "p99_ms": (percentile(0.99) * 1000).rounded() / 1000,
            "duration_s": (result.elapsed * 100).rounded() / 100,
            "concurrency": concurrency,
        ]
        if let firstError = result.firstError { object["first_error"] = firstError }
        if let value = result.caCPUMillisecondsPerCall { object["ca_cpu_ms_per_issuance"] = milliseconds(value) }
        if let value = result.clientCPUMillisecondsPerCall { object["client_cpu_ms_per_issuance"] = milliseconds(value) }
        if let baseline {
            object["baseline_per_second"] = (baseline.perSecond * 10).rounded() / 10
            object["baseline_failed"] = baseline.failed
            if let value = baseline.caCPUMillisecondsPerCall { object["baseline_ca_cpu_ms_per_call"] = milliseconds(value) }
            if let value = baseline.clientCPUMillisecondsPerCall { object["baseline_client_cpu_ms_per_call"] = milliseconds(value) }
        }
        if let speed {
            let limit = 1 / (1 / speed.sign + 1 / speed.verify)
            object["openssl_sign_per_s"] = speed.sign
            object["openssl_verify_per_s"] = speed.verify
            object["crypto_limit_per_s"] = (limit * 10).rounded() / 10
            object["share_of_crypto_limit"] = (perSecond / limit * 1000).rounded() / 1000
        }
        if json {
            if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) {
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        print("rampart bench ca: \(concurrency) clients, \(String(format: "%.1f", result.elapsed)) s")
        print(String(format: "  issued        %d (%d failed)", result.issued, result.failed))
        print(String(format: "  per second    %.1f", perSecond))
        print(String(format: "  latency p50   %.2f ms", percentile(0.50)))
        print(String(format: "  latency p99   %.2f ms", percentile(0.99)))
        if let firstError = result.firstError { print("  first error   \(firstError)") }
        if let ca = result.caCPUMillisecondsPerCall, let clients = result.clientCPUMillisecondsPerCall {
            print(String(format: "  CPU per issuance: CA %.3f ms, clients %.3f ms", ca, clients))
        }
        if let baseline {
            print(String(format: "  baseline, the trust-bundle call (no signing, no store): %.1f/s (%d failed)", baseline.perSecond, baseline.failed))
            if let ca = baseline.caCPUMillisecondsPerCall, let clients = baseline.clientCPUMillisecondsPerCall {
                print(String(format: "  CPU per baseline call: CA %.3f ms, clients %.3f ms", ca, clients))
            }
        }
        if let speed {
            let limit = 1 / (1 / speed.sign + 1 / speed.verify)
            print(String(format: "  openssl speed ecdsap256: sign %.1f/s, verify %.1f/s", speed.sign, speed.verify))
            print(String(format: "  single-core crypto limit 1/(1/sign+1/verify) = %.1f/s", limit))
            print(String(format: "  share of crypto limit   %.3f", perSecond / limit))
        }
    }
}

/// `openssl speed -seconds 3 ecdsap256`, run in the same process tree for a same-machine ratio.
struct OpenSSLSpeed {
    let sign: Double
    let verify: Double

    static func measure() -> OpenSSLSpeed? {
        guard let output = UnmaskedSpawn.run(["openssl", "speed", "-seconds", "3", "ecdsap256"]) else { return nil }
        return parse(output)
    }

    /// Reads the `256 bits ecdsa (nistp256) … sign/s verify/s` row.
    static func parse(_ output: String) -> OpenSSLSpeed? {
        for line in output.split(separator: "\n") where line.contains("nistp256") && line.contains("ecdsa") {
            let numbers = line.split(separator: " ").compactMap { Double($0) }
            if numbers.count >= 2 { return OpenSSLSpeed(sign: numbers[numbers.count - 2], verify: numbers[numbers.count - 1]) }
        }
        return nil
    }
}

/// `rampart ca serve` started from this same executable, on ports the OS picks.
final class CAChildProcess {
    let process: Process
    let grpcPort: Int

    private init(process: Process, grpcPort: Int) {
        self.process = process
        self.grpcPort = grpcPort
    }

    static func start(state: String) throws -> CAChildProcess {
        let process = Process()
        process.executableURL = Bundle.main.executableURL ?? URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = ["ca", "serve", "--state", state, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-level", "error"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var buffer = ""
        let deadline = Date().addingTimeInterval(30)
        while !buffer.contains("\n") && process.isRunning && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { usleep(10_000) } else { buffer += String(decoding: chunk, as: UTF8.self) }
        }
        guard let range = buffer.range(of: "grpc=127.0.0.1:"), let port = Int(buffer[range.upperBound...].prefix { $0.isNumber }) else {
            process.terminate()
            throw ValidationError("the CA did not start: \(buffer)")
        }
        return CAChildProcess(process: process, grpcPort: port)
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}

/// Runs a command with an empty signal mask and default signal actions.
///
/// `openssl speed` stops each test with SIGALRM; a child started by Foundation's Process inherits
/// the signal mask of the spawning thread, where the Swift runtime may have SIGALRM blocked, and
/// then never stops. posix_spawn lets the mask be reset for the child.
enum UnmaskedSpawn {
    /// Starts `arguments` (the first looked up in PATH unless it has a slash) with `actions`, an
    /// empty signal mask and default actions for the signals children rely on; returns
    /// posix_spawnp's result (0 on success) and sets `pid`.
    static func spawn(_ arguments: [String], actions: inout posix_spawn_file_actions_t, pid: inout pid_t) -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGALRM, SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        return posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, environ)
    }

    /// Runs `arguments` to the end and returns its standard output, or nil when it cannot start.
    static func run(_ arguments: [String]) -> String? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let spawned = spawn(arguments, actions: &actions, pid: &pid)
        close(fds[1])
        defer { close(fds[0]) }
        guard spawned == 0 else { return nil }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output.append(contentsOf: buffer[0..<count])
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return String(decoding: output, as: UTF8.self)
    }
}
