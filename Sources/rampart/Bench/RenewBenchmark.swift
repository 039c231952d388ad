import ArgumentParser
import Foundation
import Logging
import RampartAgent
import RampartControlPlane
import RampartIdentity
import RampartPKI
import RampartStore
import Synchronization
import X509

/// `rampart bench renew`: a herd of in-process agents renewing against one CA within a window.
struct RenewBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "A renewal herd: in-process node agents renew over mTLS against one CA process within a window."
    )

    @Option(parsing: .unconditional, help: "How many agents.")
    var agents: Int = 1000

    @Option(parsing: .unconditional, help: "Seconds over which the renewals are spread (uniformly at random).")
    var window: Int = 60

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Skip the openssl speed comparison.")
    var noOpenssl = false

    func validate() throws {
        guard (1...20000).contains(agents) else { throw ValidationError("--agents must be 1…20000") }
        guard (1...3600).contains(window) else { throw ValidationError("--window must be 1…3600 seconds") }
    }

    struct Outcome: Sendable {
        var latencies: [Double] = []
        var failures: [String] = []
    }

    final class Collector: Sendable {
        let outcome = Mutex(Outcome())
    }

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-bench-renew-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let state = StateDirectory("\(directory)/ca")
        let trustDomain = TrustDomain.clusterLocal
        _ = try await CAInitializer.run(state: state, trustDomain: trustDomain, keyAlgorithm: .ecP256, pluginDirectory: nil)

        // Every agent starts with an identity on disk, issued by the CA offline, as after bootstrap.
        let now = Date()
        let authority = try await state.loadAuthority(now: now)
        let issuer = try SVIDIssuer(authority: authority)
        let store = try state.openStore()
        var records: [CertificateRecord] = []
        var fleet: [NodeAgent] = []
        let ca = try CAChildProcess.start(state: state.path)
        defer { ca.stop() }
        let provider = GRPCIdentityProvider(host: "127.0.0.1", port: ca.grpcPort, timeout: .seconds(30))
        let quiet = Logger(label: "rampart.bench.agent", factory: { _ in SwiftLogNoOpLogHandler() })
        for index in 0..<agents {
            let key = try WorkloadKey.generate(.ecP256)
            let id = try SPIFFEID.workload(trustDomain: trustDomain, namespace: "herd", serviceAccount: "agent-\(index)")
            let issued = try await issuer.issue(publicKey: key.privateKey.publicKey, spiffeID: id, ttl: 3600, now: now)
            records.append(CertificateRecord(issued, issuedAt: now, callerIdentity: "admin", authMethod: .admin))
            let svid = try await X509SVID(chainPEM: issued.chainPEM, key: key, roots: authority.roots, now: now)
            let files = IdentityFiles(directory: "\(directory)/agents/\(index)")
            try files.write(svid: svid, bundle: TrustBundle(trustDomain: trustDomain, roots: authority.roots, jwt: nil))
            let agent = NodeAgent(
                configuration: AgentConfiguration(
                    provider: provider, caRoots: authority.roots, credential: .tokenFile("\(directory)/no-token"),
                    output: files, ttl: 3600, schedule: try RenewalSchedule()
                ),
                logger: quiet
            )
            fleet.append(agent)
        }
        for batch in stride(from: 0, to: records.count, by: 500) {
            try await store.recordIssued(Array(records[batch..<min(batch + 500, records.count)]), audit: [])
        }
        for agent in fleet { await agent.resume() }
        let baselineCPU = ca.cpuSeconds()

        if !json { print("renewal herd: \(agents) agents over \(window) s against one CA (pid \(ca.process.processIdentifier))") }
        let collector = Collector()
        let windowSeconds = Double(window)
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for agent in fleet {
                let offset = Double.random(in: 0..<windowSeconds)
                group.addTask {
                    try? await Task.sleep(until: started + .milliseconds(Int64(offset * 1000)), clock: .continuous)
                    let begin = ContinuousClock.now
                    do {
                        try await agent.renewOnce()
                        let elapsed = ContinuousClock.now - begin
                        collector.outcome.withLock { $0.latencies.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15) }
                    } catch {
                        collector.outcome.withLock { $0.failures.append((error as? AgentError)?.reason ?? "\(error)") }
                    }
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let peakRSS = ca.peakRSSKiB()
        let caCPU = ca.cpuSeconds().map { $0 - (baselineCPU ?? 0) }
        let result = collector.outcome.withLock { $0 }
        let sorted = result.latencies.sorted()
        func percentile(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
        }
        // Renewed certificates in the store, as the CA recorded them.
        let renewedInStore = try await store.certificates(matching: CertificateFilter()).filter { $0.authMethod == .mtls }.count
        let speed = noOpenssl ? nil : OpenSSLSpeed.measure()
        let cpuPerRenewal = caCPU.map { $0 / Double(max(1, sorted.count)) }
        let cryptoFloor = speed.map { 1 / $0.sign + 1 / $0.verify }

        if json {
            var object: [String: Any] = [
                "agents": agents, "window_s": window, "renewed": sorted.count, "failures": result.failures.count,
                "renewed_in_store": renewedInStore,
                "p50_ms": percentile(0.5), "p99_ms": percentile(0.99), "max_ms": sorted.last ?? 0, "wall_s": wall,
            ]
            if let peakRSS { object["ca_peak_rss_mib"] = Double(peakRSS) / 1024 }
            if let caCPU { object["ca_cpu_s"] = caCPU }
            if let cpuPerRenewal, let cryptoFloor {
                object["ca_cpu_ms_per_renewal"] = cpuPerRenewal * 1000
                object["crypto_floor_ms"] = cryptoFloor * 1000
                object["cpu_per_renewal_over_crypto_floor"] = cpuPerRenewal / cryptoFloor
            }
            if let first = result.failures.first { object["first_failure"] = first }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("  renewed                 \(sorted.count) of \(agents) (store holds \(renewedInStore) mTLS renewals)")
            print("  failures                \(result.failures.count)\(result.failures.first.map { " (first: \($0))" } ?? "")")
            print(String(format: "  latency p50 / p99 / max %.1f / %.1f / %.1f ms", percentile(0.5), percentile(0.99), sorted.last ?? 0))
            print(String(format: "  wall time               %.1f s", wall))
            if let peakRSS { print(String(format: "  CA peak RSS             %.1f MiB", Double(peakRSS) / 1024)) }
            if let caCPU { print(String(format: "  CA CPU                  %.2f s", caCPU)) }
            if let cpuPerRenewal, let cryptoFloor, let speed {
                print(String(format: "  openssl speed ecdsap256 %.0f sign/s, %.0f verify/s", speed.sign, speed.verify))
                print(String(format: "  CA CPU per renewal      %.2f ms = %.1f × the sign+verify floor (%.3f ms)", cpuPerRenewal * 1000, cpuPerRenewal / cryptoFloor, cryptoFloor * 1000))
            }
        }
        if !result.failures.isEmpty { throw ExitCode(1) }
    }
}

extension CAChildProcess {
    /// The CA's peak resident set size (VmHWM), in KiB.
    func peakRSSKiB() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return line.split(separator: " ").compactMap { Int($0) }.first
        }
        return nil
    }

    /// User plus system CPU seconds the CA has used.
    func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) / ticks
    }
}
