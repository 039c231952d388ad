import ArgumentParser
import Crypto
import Foundation
import Logging
import RampartControlPlane
import RampartIdentity
import RampartPKI
import RampartStore
import X509

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print their figures.",
        subcommands: [CABench.self]
    )
}

/// `rampart bench ca`: a CA on loopback driven end to end over gRPC/TLS by concurrent renewing clients.
struct CABench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Drive a CA on loopback end to end (gRPC over TLS, CSR checks, signing, durable commit) and compare with openssl speed."
    )

    @Option(help: "Seconds to drive the CA.")
    var duration: Int = 10

    @Option(help: "Concurrent clients, each on its own mTLS connection.")
    var concurrency: Int = 32

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Skip the openssl speed comparison.")
    var noOpenssl = false

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
        var clients: [CAClient] = []
        var csrs: [String] = []
        let rootPEM = try String(contentsOfFile: state.rootCertPath, encoding: .utf8)
        for index in 0..<concurrency {
            let key = P256.Signing.PrivateKey()
            let id = try SPIFFEID.workload(trustDomain: trustDomain, namespace: "bench", serviceAccount: "client-\(index)")
            let issued = try await issuer.issue(publicKey: Certificate.PublicKey(key.publicKey), spiffeID: id, ttl: 3600, now: now)
            try await store.recordIssued(
                [CertificateRecord(
                    serial: issued.serialHex, spiffeID: id.string, publicKeySHA256: issued.publicKeySHA256, notBefore: issued.notBefore,
                    notAfter: issued.notAfter, issuedAt: now, callerIdentity: "admin", authMethod: .admin, chainPEM: issued.chainPEM.joined(separator: "\n")
                )],
                audit: []
            )
            let csr = try CertificateSigningRequest(
                version: .v1, subject: DistinguishedName(), privateKey: Certificate.PrivateKey(key),
                attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256
            )
            csrs.append(try csr.serializeAsPEM().pemString)
            clients.append(CAClient(host: "127.0.0.1", port: 0, rootPEM: rootPEM, clientChainPEM: issued.chainPEM.joined(separator: "\n"), clientKeyPEM: key.pemRepresentation))
        }

        var logger = Logger(label: "rampart.bench")
        logger.logLevel = .error
        let server = CAServer(configuration: CAServerConfiguration(state: state, listenPort: 0, adminPort: 0), logger: logger)
        let (readyStream, readyContinuation) = AsyncStream.makeStream(of: CAServerAddresses.self)
        let duration = self.duration
        let result: BenchResult = try await withThrowingTaskGroup(of: BenchResult?.self) { group in
            group.addTask {
                try await server.run(metricsText: { "" }) { readyContinuation.yield($0) }
                return nil
            }
            var iterator = readyStream.makeAsyncIterator()
            guard let addresses = await iterator.next() else { throw ValidationError("the CA did not start") }
            let port = addresses.grpcPort
            let outcome = try await Self.drive(clients: clients.map { var client = $0; client.port = port; return client }, csrs: csrs, seconds: duration)
            group.cancelAll()
            return outcome
        }

        var speed: OpenSSLSpeed?
        if !noOpenssl { speed = OpenSSLSpeed.measure() }
        report(result, speed: speed)
    }

    struct BenchResult: Sendable {
        var issued: Int
        var failed: Int
        var elapsed: Double
        var latencies: [Double]
        var firstError: String?
    }

    static func drive(clients: [CAClient], csrs: [String], seconds: Int) async throws -> BenchResult {
        let start = ContinuousClock.now
        let deadline = start + .seconds(seconds)
        let parts = try await withThrowingTaskGroup(of: BenchResult.self) { group in
            for (client, csr) in zip(clients, csrs) {
                group.addTask {
                    var part = BenchResult(issued: 0, failed: 0, elapsed: 0, latencies: [], firstError: nil)
                    try await client.withConnection { connection in
                        // Bounded: the deadline, and at most a million requests per client.
                        var remaining = 1_000_000
                        while ContinuousClock.now < deadline && remaining > 0 {
                            remaining -= 1
                            let began = ContinuousClock.now
                            do {
                                let chain = try await connection.createCertificate(csrPEM: csr, validitySeconds: 3600)
                                if chain.count >= 2 { part.issued += 1 } else { part.failed += 1 }
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

    func report(_ result: BenchResult, speed: OpenSSLSpeed?) {
        let sorted = result.latencies.sorted()
        let percentile: (Double) -> Double = { p in
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
        }
        let perSecond = Double(result.issued) / max(result.elapsed, 0.001)
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl", "speed", "-seconds", "3", "ecdsap256"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return parse(String(decoding: data, as: UTF8.self))
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
