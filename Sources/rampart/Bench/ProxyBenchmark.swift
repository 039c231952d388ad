import ArgumentParser
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `rampart bench proxy`: wrk → proxy A outbound → mTLS → proxy B inbound (one ALLOW policy) →
/// a small HTTP app, against HAProxy configured for the same two hops, in the same run.
struct ProxyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Drive two companion proxies (outbound, mTLS, inbound with an ALLOW policy) with wrk, and HAProxy on the same path.",
        discussion: """
            Everything runs on 127.0.0.1 in a temporary directory: 'rampart ca init', 'rampart apply' of one ALLOW \
            AuthorizationPolicy and 'rampart ca serve' as child processes of this one; two workload identities issued \
            from the CA's files; a small HTTP app in this process (a constant 32-byte body); proxy A and proxy B as \
            'rampart proxy' processes. The same wrk command then drives two HAProxy processes configured for the same \
            two hops (plain HTTP in, TLS with client certificates between them). Each side gets the same warm-up and \
            the same load; RSS and CPU time are read from /proc for each proxy process. With --grpc, h2load sends \
            unary gRPC calls instead, over HTTP/2 on every hop (HAProxy with 'proto h2' and ALPN h2), to an HTTP/2 \
            app that answers each with one message and grpc-status 0. A run fails rather than report figures when \
            the app did not answer the calls. Needs wrk (or h2load), curl and haproxy: ./scripts/install-deps.sh --bench.
            """
    )

    @Option(parsing: .unconditional, help: "Seconds of load on each side (after a warm-up of up to 2 s).")
    var duration: Int = 10

    @Option(parsing: .unconditional, help: "wrk connections.")
    var connections: Int = 32

    @Option(parsing: .unconditional, help: ArgumentHelp("Event-loop threads in each Rampart proxy (default: one per CPU).", valueName: "n"))
    var proxyEventLoops: Int?

    @Option(parsing: .unconditional, help: "wrk threads.")
    var threads: Int = 2

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Keep the temporary directory (configs, identities, every process's output) and print where it is.")
    var keep = false

    @Flag(help: "Measure Rampart only.")
    var skipHaproxy = false

    @Flag(help: "Load unary gRPC calls over HTTP/2 with h2load (every hop HTTP/2, as gRPC goes) instead of HTTP/1.1 requests with wrk.")
    var grpc = false

    @Option(parsing: .unconditional, help: ArgumentHelp("With --grpc: concurrent calls per connection (h2load -m).", valueName: "n"))
    var streams: Int = 1

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "The length of the app's answers, in bytes (default: its 32-byte constant). Large answers measure downloads: the report adds the body bytes per second.",
            valueName: "bytes"))
    var responseBytes: Int?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Send each request as a PUT with a body this long, in bytes (wrk -s with a script it writes). Large bodies measure uploads: the report adds the upload bytes per second.",
            valueName: "bytes"))
    var requestBytes: Int?

    @Option(help: ArgumentHelp("Run the CA and the proxies from this rampart executable instead of this one, to compare builds with the same harness.", valueName: "path"))
    var executable: String?

    func validate() throws {
        guard (1...600).contains(duration) else { throw ValidationError("--duration must be 1…600 seconds") }
        guard (1...10000).contains(connections) else { throw ValidationError("--connections must be 1…10000") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1…64") }
        guard (1...1000).contains(streams) else { throw ValidationError("--streams must be 1…1000") }
        if let loops = proxyEventLoops, !(1...64).contains(loops) { throw ValidationError("--proxy-event-loops must be 1…64") }
        if let bytes = responseBytes {
            guard (1...(1 << 30)).contains(bytes) else { throw ValidationError("--response-bytes must be 1…1073741824") }
            guard !grpc else { throw ValidationError("--response-bytes is for HTTP/1.1 loads; --grpc calls answer one small message") }
        }
        if let bytes = requestBytes {
            guard (1...(1 << 30)).contains(bytes) else { throw ValidationError("--request-bytes must be 1…1073741824") }
            guard !grpc else { throw ValidationError("--request-bytes is for HTTP/1.1 loads; --grpc calls send one small message") }
        }
        if let executable, !FileManager.default.isExecutableFile(atPath: executable) {
            throw ValidationError("--executable \(executable) is not an executable file: give the path of a rampart build")
        }
        guard threads <= connections else { throw ValidationError("--threads (\(threads)) must not exceed --connections (\(connections)); wrk gives each thread at least one connection") }
    }

    /// The host wrk and the probes name: service `b` in namespace `bench`.
    static let serviceHost = "b.bench"

    func run() async throws {
        let missing = ([grpc ? "h2load" : "wrk", "curl"] + (skipHaproxy ? [] : ["haproxy"])).filter { Self.which($0) == nil }
        guard missing.isEmpty else {
            throw BenchError("\(missing.joined(separator: ", ")) not found in PATH: run ./scripts/install-deps.sh --bench (or pass --skip-haproxy to measure Rampart alone)")
        }
        #if DEBUG
        StandardError.write(
            Data("note: a debug build; the app and proxies run unoptimized, so figures say little. Use swift build -c release --product rampart\n".utf8))
        #endif
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-bench-proxy-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let keep = self.keep
        let interrupts = Self.stopChildrenOnInterrupt(directory: directory, keep: keep)
        defer {
            for source in interrupts { source.cancel() }
            BenchChild.stopAll()
            if keep {
                StandardError.write(Data("kept \(directory)\n".utf8))
            } else {
                try? FileManager.default.removeItem(atPath: directory)
            }
        }

        let app = try await ConstantApp.start(grpc: grpc, bodyBytes: responseBytes)
        let outcome: Result<(ProxyFigures, ProxyFigures?), any Error>
        do {
            let mesh = try await BenchMesh.prepare(directory: directory, executable: executable ?? Self.executable())
            let rampart = try await measureRampart(mesh: mesh, app: app, directory: directory)
            let haproxy = skipHaproxy ? nil : try await measureHAProxy(mesh: mesh, app: app, directory: directory)
            outcome = .success((rampart, haproxy))
        } catch {
            outcome = .failure(error)
        }
        await app.stop()
        let (rampart, haproxy) = try outcome.get()
        let report = ProxyBenchReport(
            duration: duration, connections: connections, threads: threads, cpus: ProcessInfo.processInfo.activeProcessorCount,
            bodyBytes: grpc ? ConstantApp.body.count : app.payload.readableBytes, requestBytes: requestBytes, grpcStreams: grpc ? streams : nil, rampart: rampart, haproxy: haproxy
        )
        print(json ? report.json() : report.text())
    }

    /// Starts the control plane and both proxies, checks the path, loads it, and stops them.
    func measureRampart(mesh: BenchMesh, app: ConstantApp, directory: String) async throws -> ProxyFigures {
        let appPort = app.port
        let ca = try BenchChild.spawn(
            name: "rampart ca serve", file: "ca-serve",
            arguments: [mesh.executable, "ca", "serve", "--state", mesh.state, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-level", "warning"],
            logDirectory: directory
        )
        defer { ca.stop() }
        let caLine = try await ca.waitForLine(containing: "rampart ca ready", timeout: .seconds(30))
        guard let grpcPort = Self.port(after: "grpc=127.0.0.1:", in: caLine) else { throw BenchError("cannot read the CA's gRPC port from '\(caLine)'") }

        func proxy(_ workload: String, identity: String, services: [String]) throws -> BenchChild {
            var arguments = [
                mesh.executable, "proxy", "--workload", workload, "--namespace", BenchMesh.namespace, "--labels", "app=\(workload)",
                "--app", "127.0.0.1:\(appPort)", "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--control-plane", "127.0.0.1:\(grpcPort)", "--ca-root", mesh.rootCert, "--identity-dir", identity,
                "--access-log", "/dev/null", "--log-level", "warning",
            ]
            for service in services { arguments += ["--service", service] }
            if let loops = proxyEventLoops { arguments += ["--event-loops", String(loops)] }
            return try BenchChild.spawn(name: "proxy \(workload.uppercased())", file: "proxy-\(workload)", arguments: arguments, logDirectory: directory)
        }
        let proxyB = try proxy("b", identity: mesh.identityB, services: ["b:\(appPort)"])
        defer { proxyB.stop() }
        let proxyA = try proxy("a", identity: mesh.identityA, services: [])
        defer { proxyA.stop() }
        let children = [proxyA, proxyB, ca]
        let (outboundA, adminA) = try await Self.proxyPorts(proxyA)
        let (_, adminB) = try await Self.proxyPorts(proxyB)
        guard let inboundB = Self.port(after: "inbound=127.0.0.1:", in: try await proxyB.waitForLine(containing: "rampart proxy ready", timeout: .seconds(1))) else {
            throw BenchError("cannot read proxy B's inbound port:\n\(proxyB.logTail())")
        }

        for (admin, child) in [(adminA, proxyA), (adminB, proxyB)] {
            let ready = await HTTPProbe.poll("http://127.0.0.1:\(admin)/healthz/ready", logDirectory: directory, timeout: .seconds(20)) { $0.status == 200 }
            guard ready.accepted else {
                var message = "\(child.name) is not ready after 20 s: /healthz/ready answered \(ready.last.status): \(ready.last.body.trimmingCharacters(in: .whitespacesAndNewlines))"
                if ready.last.body.contains("no config") {
                    message += "\nThe control plane sent it no config: a 'rampart ca serve' without the rampart.config.v1.MeshConfigService stream leaves proxies without config, and they deny every inbound request (403). Nothing was measured."
                }
                throw BenchError(message + "\n" + children.map { $0.logTail() }.joined(separator: "\n"))
            }
        }
        try await Self.checkPolicy(adminB: adminB, inboundB: inboundB, directory: directory, children: children)
        try await probePath(url: "http://127.0.0.1:\(outboundA)\(path)", via: "proxy A → proxy B", app: app, directory: directory, children: children)

        let figures = try await load(
            side: "rampart", url: "http://127.0.0.1:\(outboundA)\(path)", app: app, processes: [("proxy_a", proxyA), ("proxy_b", proxyB)],
            directory: directory)
        return figures
    }

    /// The path each request names: a gRPC method with --grpc.
    var path: String { grpc ? "/rampart.bench.Constant/Call" : "/" }

    /// Starts the two HAProxy processes, checks the path, and loads it the same way.
    func measureHAProxy(mesh: BenchMesh, app: ConstantApp, directory: String) async throws -> ProxyFigures {
        let peer = try HAProxyPeer.write(
            directory: directory, appPort: app.port, rootCert: mesh.rootCert, clientPEM: mesh.haproxyPEMA, serverPEM: mesh.haproxyPEMB, http2: grpc)
        let (outbound, inbound) = try await peer.start(logDirectory: directory)
        defer {
            outbound.stop()
            inbound.stop()
        }
        try await probePath(url: "http://127.0.0.1:\(peer.outboundPort)\(path)", via: "HAProxy A → HAProxy B", app: app, directory: directory, children: [outbound, inbound])
        return try await load(
            side: "haproxy", url: "http://127.0.0.1:\(peer.outboundPort)\(path)", app: app, processes: [("proxy_a", outbound), ("proxy_b", inbound)],
            directory: directory)
    }

    /// One run of the load generator: wrk, or h2load with --grpc.
    func run(url: String, seconds: Int, directory: String, file: String) async throws -> ProxyLoadResult {
        if grpc {
            return try await H2LoadRun.run(
                url: url, authority: Self.serviceHost, threads: threads, connections: connections, streams: streams, seconds: seconds,
                logDirectory: directory, file: file)
        }
        return try await WrkRun.run(
            url: url, host: Self.serviceHost, threads: threads, connections: connections, seconds: seconds,
            script: try requestBytes.map { try WrkRun.uploadScript(bytes: $0, directory: directory) }, logDirectory: directory, file: file)
    }

    /// A warm-up, then the measured wrk run, with each process's CPU time over the run and RSS after it.
    func load(side: String, url: String, app: ConstantApp, processes: [(String, BenchChild)], directory: String) async throws -> ProxyFigures {
        let warmup = min(2, duration)
        let tool = grpc ? "h2load" : "wrk"
        _ = try await run(url: url, seconds: warmup, directory: directory, file: "\(tool)-\(side)-warmup")
        let before = processes.map { $0.1.cpuSeconds() }
        let answeredBefore = app.answered
        let result = try await run(url: url, seconds: duration, directory: directory, file: "\(tool)-\(side)")
        let answered = app.answered - answeredBefore
        var figures: [ProcessFigures] = []
        for ((role, child), start) in zip(processes, before) {
            guard child.isRunning, let start, let end = child.cpuSeconds(), let rss = child.residentKiB() else {
                throw BenchError("\(child.name) stopped or cannot be read in /proc during the \(side) run:\n\(child.logTail())")
            }
            figures.append(ProcessFigures(role: role, pid: child.pid, rssKiB: rss, cpuSeconds: end - start, requests: result.requests))
        }
        // A run whose responses are not the app's 200 (403 from a proxy without policy, 502/503 from
        // a broken path) measures something else: refuse it rather than report it.
        if result.non2xx > result.requests / 1000 {
            throw BenchError(
                "\(side): \(result.non2xx) of \(result.requests) responses were not 2xx/3xx (\(tool)'s output is in \(directory)/\(tool)-\(side).out; --keep keeps it); the figures would not measure the proxied path"
            )
        }
        // A gRPC denial is HTTP 200 too: what counts is that the application answered the calls.
        if answered < result.requests - result.requests / 1000 {
            throw BenchError(
                "\(side): the application answered \(answered) of the \(result.requests) successful responses; the rest came from a proxy (a denial, or an error), so the figures would not measure the proxied path; rerun with --keep and read the proxies' logs in \(directory) to see why"
            )
        }
        return ProxyFigures(side: side, load: result, processes: figures)
    }

    /// Probes a path until the app's answer comes back through it, bounded; otherwise an error that
    /// says what came back and shows the processes' output.
    func probePath(url: String, via: String, app: ConstantApp, directory: String, children: [BenchChild]) async throws {
        let expected = String(decoding: (grpc ? ConstantApp.message : app.payload).readableBytesView, as: UTF8.self)
        let probe = await HTTPProbe.poll(
            url, host: Self.serviceHost, grpcMessage: grpc ? H2LoadRun.message : nil, logDirectory: directory, timeout: .seconds(15)
        ) {
            $0.status == 200 && $0.body == expected
        }
        guard probe.accepted else {
            let last = probe.last
            var message = "\(grpc ? "a gRPC call" : "a GET") through \(via) (\(url), Host: \(Self.serviceHost)) did not return the app's 200 within 15 s; the last answer was \(last.status == 0 ? "no response" : String(last.status)): \(last.body.prefix(300).trimmingCharacters(in: .whitespacesAndNewlines))"
            if last.status == 403 {
                message += "\nProxy B denied the request: it has no config (no control-plane config stream) or the ALLOW policy did not reach it. Nothing was measured."
            }
            throw BenchError(message + "\n" + children.map { $0.logTail() }.joined(separator: "\n"))
        }
    }

    /// Checks that proxy B enforces the ALLOW policy: its config holds one AuthorizationPolicy, and
    /// a plaintext request to its inbound listener, which carries no principal, is not let through.
    static func checkPolicy(adminB: Int, inboundB: Int, directory: String, children: [BenchChild]) async throws {
        let dump = await HTTPProbe.get("http://127.0.0.1:\(adminB)/config_dump", logDirectory: directory)
        let object = (try? JSONSerialization.jsonObject(with: Data(dump.body.utf8))) as? [String: Any]
        let policies = ((object?["config"] as? [String: Any])?["authorization_policies"] as? NSNumber)?.intValue
        guard policies == 1 else {
            throw BenchError(
                "proxy B's /config_dump shows \(policies.map(String.init) ?? "no") AuthorizationPolicies in force, expected the one ALLOW policy the benchmark applied:\n\(dump.body.prefix(600))\n"
                    + children.map { $0.logTail() }.joined(separator: "\n"))
        }
        let plain = await HTTPProbe.get("http://127.0.0.1:\(inboundB)/", host: serviceHost, logDirectory: directory)
        guard plain.status != 200 else {
            throw BenchError("proxy B answered 200 to a plaintext request with no principal: the ALLOW policy is not enforced, so the benchmark would not measure the enforcing path")
        }
    }

    /// Reads `rampart proxy ready inbound=… outbound=H:P admin=H:P` from a proxy's standard error.
    static func proxyPorts(_ proxy: BenchChild) async throws -> (outbound: Int, admin: Int) {
        let line = try await proxy.waitForLine(containing: "rampart proxy ready", timeout: .seconds(30))
        guard let outbound = port(after: "outbound=127.0.0.1:", in: line), let admin = port(after: "admin=127.0.0.1:", in: line) else {
            throw BenchError("cannot read \(proxy.name)'s ports from '\(line)'")
        }
        return (outbound, admin)
    }

    /// The number that follows `marker` in `line`.
    static func port(after marker: String, in line: String) -> Int? {
        guard let range = line.range(of: marker) else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    /// This executable's path, for starting `rampart ca …` and `rampart proxy`.
    static func executable() -> String {
        let resolved = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        if resolved != "/proc/self/exe" { return resolved }
        return Bundle.main.executablePath ?? CommandLine.arguments[0]
    }

    /// The first executable named `name` in PATH.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// On SIGINT or SIGTERM: stop every child, remove the directory unless kept, and exit.
    static func stopChildrenOnInterrupt(directory: String, keep: Bool) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                BenchChild.stopAll()
                if !keep { try? FileManager.default.removeItem(atPath: directory) }
                StandardError.write(Data("rampart bench proxy: interrupted; stopped every child process\n".utf8))
                Glibc.exit(130)
            }
            source.resume()
            return source
        }
    }
}
