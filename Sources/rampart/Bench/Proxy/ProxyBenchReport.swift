import Foundation

/// One proxy process's cost over a measured run.
struct ProcessFigures: Sendable {
    /// `proxy_a` (outbound hop) or `proxy_b` (inbound hop).
    let role: String
    let pid: Int32
    /// VmRSS right after the run.
    let rssKiB: Int
    /// User plus system CPU seconds used during the run.
    let cpuSeconds: Double
    let requests: Int

    var rssMiB: Double { Double(rssKiB) / 1024 }
    var cpuSecondsPerThousand: Double { requests > 0 ? cpuSeconds / Double(requests) * 1000 : 0 }
}

/// One side of the comparison: what the load generator saw and what each of its two proxies cost.
struct ProxyFigures: Sendable {
    /// `rampart` or `haproxy`.
    let side: String
    let load: ProxyLoadResult
    let processes: [ProcessFigures]
}

/// The figures of `rampart bench proxy`, as a table or one JSON object.
struct ProxyBenchReport {
    /// Targets from the issue: at least half HAProxy's requests/s, at most twice its p99.
    static let minimumThroughputRatio = 0.5
    static let maximumP99Ratio = 2.0

    let duration: Int
    let connections: Int
    let threads: Int
    let cpus: Int
    let bodyBytes: Int
    /// With `--request-bytes`: the body every request carries.
    var requestBytes: Int? = nil
    /// With `--grpc`: concurrent calls per connection; nil for HTTP/1.1 with wrk.
    let grpcStreams: Int?
    let rampart: ProxyFigures
    let haproxy: ProxyFigures?

    var throughputRatio: Double? { haproxy.map { rampart.load.requestsPerSecond / max($0.load.requestsPerSecond, 0.001) } }
    var p99Ratio: Double? { haproxy.map { rampart.load.p99Milliseconds / max($0.load.p99Milliseconds, 0.001) } }

    func json() -> String {
        func side(_ figures: ProxyFigures) -> [String: Any] {
            var object: [String: Any] = [
                "requests_per_s": round(figures.load.requestsPerSecond, 1),
                "p50_ms": round(figures.load.p50Milliseconds, 3),
                "p99_ms": round(figures.load.p99Milliseconds, 3),
                "requests": figures.load.requests,
                "non_2xx": figures.load.non2xx,
                "socket_errors": figures.load.socketErrors,
            ]
            for process in figures.processes {
                object[process.role] = [
                    "rss_mib": round(process.rssMiB, 1),
                    "cpu_s": round(process.cpuSeconds, 2),
                    "cpu_s_per_1k_requests": round(process.cpuSecondsPerThousand, 4),
                ]
            }
            return object
        }
        var object: [String: Any] = [
            "duration_s": duration, "connections": connections, "threads": threads, "cpus": cpus, "body_bytes": bodyBytes,
            "rampart": side(rampart), "load": grpcStreams == nil ? "http1" : "grpc",
        ]
        if grpcStreams == nil {
            object["rampart_body_mib_per_s"] = round(rampart.load.requestsPerSecond * Double(bodyBytes) / 1_048_576, 1)
            if let haproxy { object["haproxy_body_mib_per_s"] = round(haproxy.load.requestsPerSecond * Double(bodyBytes) / 1_048_576, 1) }
        }
        if let requestBytes {
            object["request_bytes"] = requestBytes
            object["rampart_upload_mib_per_s"] = round(rampart.load.requestsPerSecond * Double(requestBytes) / 1_048_576, 1)
            if let haproxy { object["haproxy_upload_mib_per_s"] = round(haproxy.load.requestsPerSecond * Double(requestBytes) / 1_048_576, 1) }
        }
        if let grpcStreams { object["streams"] = grpcStreams }
        if let haproxy, let throughputRatio, let p99Ratio {
            object["haproxy"] = side(haproxy)
            object["ratio_requests_per_s"] = round(throughputRatio, 3)
            object["ratio_p99"] = round(p99Ratio, 3)
            object["target_requests_per_s_met"] = throughputRatio >= Self.minimumThroughputRatio
            object["target_p99_met"] = p99Ratio <= Self.maximumP99Ratio
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    func text() -> String {
        let sides = [rampart] + (haproxy.map { [$0] } ?? [])
        var lines = [
            "rampart bench proxy: "
                + (grpcStreams.map { "unary gRPC calls, h2load -t \(threads) -c \(connections) -m \($0) -D \(duration)" }
                    ?? "wrk -t \(threads) -c \(connections) -d \(duration)s")
                + (requestBytes.map { ", PUT of \($0) bytes each," } ?? "")
                + " through two proxies (outbound, mTLS, inbound with an ALLOW policy) to a \(bodyBytes)-byte app, \(cpus) CPUs",
            row("", sides.map(\.side)),
            row("requests/s", sides.map { String(format: "%.1f", $0.load.requestsPerSecond) }),
            row("p50 latency ms", sides.map { String(format: "%.3f", $0.load.p50Milliseconds) }),
            row("p99 latency ms", sides.map { String(format: "%.3f", $0.load.p99Milliseconds) }),
            row("requests", sides.map { String($0.load.requests) }),
        ]
        if grpcStreams == nil && bodyBytes >= 1024 {
            lines.append(row("body MiB/s", sides.map { String(format: "%.1f", $0.load.requestsPerSecond * Double(bodyBytes) / 1_048_576) }))
        }
        if let requestBytes, requestBytes >= 1024 {
            lines.append(row("upload MiB/s", sides.map { String(format: "%.1f", $0.load.requestsPerSecond * Double(requestBytes) / 1_048_576) }))
        }
        lines += [
            row("non-2xx, socket errors", sides.map { "\($0.load.non2xx), \($0.load.socketErrors)" }),
        ]
        for (index, label) in ["A (outbound)", "B (inbound)"].enumerated() {
            lines.append(row("\(label) RSS MiB", sides.map { index < $0.processes.count ? String(format: "%.1f", $0.processes[index].rssMiB) : "-" }))
            lines.append(row("\(label) CPU s/1k req", sides.map { index < $0.processes.count ? String(format: "%.4f", $0.processes[index].cpuSecondsPerThousand) : "-" }))
        }
        if let throughputRatio, let p99Ratio {
            let met = { (ok: Bool) in ok ? "met" : "NOT met" }
            lines.append(
                String(format: "  rampart/haproxy requests/s  %.3f  (target ≥ %.1f: ", throughputRatio, Self.minimumThroughputRatio)
                    + met(throughputRatio >= Self.minimumThroughputRatio) + ")")
            lines.append(String(format: "  rampart/haproxy p99         %.3f  (target ≤ %.1f: ", p99Ratio, Self.maximumP99Ratio) + met(p99Ratio <= Self.maximumP99Ratio) + ")")
        }
        return lines.joined(separator: "\n")
    }

    private func row(_ label: String, _ values: [String]) -> String {
        "  " + label.padding(toLength: 28, withPad: " ", startingAt: 0) + values.map { $0.padding(toLength: 14, withPad: " ", startingAt: 0) }.joined()
    }

    private func round(_ value: Double, _ places: Int) -> Double {
        let scale = pow(10, Double(places))
        return (value * scale).rounded() / scale
    }
}
