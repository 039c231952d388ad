import Foundation

/// Runs h2load (nghttp2's HTTP/2 load generator) with unary gRPC calls against one target, and
/// reads its report and its per-request log, for `rampart bench proxy --grpc`.
enum H2LoadRun {
    /// The message each call sends: a gRPC frame (uncompressed, 4-byte length) of a short text.
    static let message: [UInt8] = {
        let text = Array("rampart bench: unary call".utf8)
        return [0] + withUnsafeBytes(of: UInt32(text.count).bigEndian, Array.init) + text
    }()

    /// `h2load -t threads -c connections -m streams -D seconds` in cleartext with prior knowledge,
    /// each request a POST of `message` with gRPC's headers and `authority`; bounded in time.
    static func run(
        url: String, authority: String, threads: Int, connections: Int, streams: Int, seconds: Int, logDirectory: String, file: String
    ) async throws -> ProxyLoadResult {
        let body = "\(logDirectory)/grpc-message.bin"
        if !FileManager.default.fileExists(atPath: body) {
            try Data(message).write(to: URL(fileURLWithPath: body))
        }
        let log = "\(logDirectory)/\(file).requests"
        let arguments = [
            "h2load", "-t", String(threads), "-c", String(connections), "-m", String(streams), "-D", String(seconds),
            "-d", body, "-H", ":authority: \(authority)", "-H", "content-type: application/grpc", "-H", "te: trailers",
            "--log-file", log, url,
        ]
        let output = try await BenchChild.output(of: arguments, file: file, logDirectory: logDirectory, timeout: .seconds(seconds + 30))
        let requests = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return try parse(output, requestLog: requests)
    }

    /// Reads h2load's summary (`finished in …, … req/s`, `requests: …`, `status codes: …`) and
    /// the latency percentiles of its per-request log (start, status, microseconds per line).
    static func parse(_ text: String, requestLog: String) throws -> ProxyLoadResult {
        var result = ProxyLoadResult(requests: -1, seconds: 0, requestsPerSecond: -1, p50Milliseconds: -1, p99Milliseconds: -1, non2xx: 0, socketErrors: 0)
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
            if line.hasPrefix("finished in"), fields.count >= 5, let rate = Double(fields[3]) {
                result.seconds = (ProxyLoadResult.milliseconds(fields[2]) ?? 0) / 1000
                result.requestsPerSecond = rate
            } else if line.hasPrefix("requests:") {
                // requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
                func count(_ label: String) -> Int? { fields.firstIndex(of: label).flatMap { $0 > 0 ? Int(fields[$0 - 1]) : nil } }
                result.requests = count("succeeded") ?? -1
                result.socketErrors = (count("failed") ?? 0) + (count("errored") ?? 0) + (count("timeout") ?? 0)
            } else if line.hasPrefix("status codes:") {
                // status codes: N 2xx, N 3xx, N 4xx, N 5xx
                let counts = fields.dropFirst(2)
                var other = 0
                var iterator = counts.makeIterator()
                while let number = iterator.next(), let label = iterator.next() {
                    if label != "2xx" { other += Int(number) ?? 0 }
                }
                result.non2xx = other
            }
        }
        var latencies: [Double] = []
        for line in requestLog.split(separator: "\n") {
            let columns = line.split(separator: "\t")
            if columns.count >= 3, let micros = Double(columns[2]) { latencies.append(micros / 1000) }
        }
        latencies.sort()
        if !latencies.isEmpty {
            result.p50Milliseconds = latencies[latencies.count / 2]
            result.p99Milliseconds = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
        }
        guard result.requests >= 0, result.requestsPerSecond >= 0, result.p50Milliseconds >= 0 else {
            throw BenchError("cannot read h2load's output (expected 'finished in', 'requests:' and a per-request log):\n\(text)")
        }
        return result
    }
}
