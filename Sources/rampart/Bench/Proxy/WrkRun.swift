import Foundation

/// What one load run reports: `wrk --latency`, or h2load with its per-request log (see `H2LoadRun`).
struct ProxyLoadResult: Sendable, Equatable {
    /// Completed requests and the seconds wrk ran.
    var requests: Int
    var seconds: Double
    /// `Requests/sec:`.
    var requestsPerSecond: Double
    /// Latency percentiles from the `Latency Distribution` block, in milliseconds.
    var p50Milliseconds: Double
    var p99Milliseconds: Double
    /// `Non-2xx or 3xx responses:` (0 when absent).
    var non2xx: Int
    /// The sum of `Socket errors:` (0 when absent).
    var socketErrors: Int

    /// Reads wrk's text output.
    static func parse(_ text: String) throws -> ProxyLoadResult {
        var result = ProxyLoadResult(requests: -1, seconds: 0, requestsPerSecond: -1, p50Milliseconds: -1, p99Milliseconds: -1, non2xx: 0, socketErrors: 0)
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            if line.hasPrefix("Requests/sec:"), words.count >= 2, let value = Double(words[1]) {
                result.requestsPerSecond = value
            } else if line.hasPrefix("50%"), words.count >= 2, let value = milliseconds(words[1]) {
                result.p50Milliseconds = value
            } else if line.hasPrefix("99%"), words.count >= 2, let value = milliseconds(words[1]) {
                result.p99Milliseconds = value
            } else if words.count >= 4, words[1] == "requests", words[2] == "in", let count = Int(words[0]) {
                result.requests = count
                result.seconds = (milliseconds(words[3].trimmingCharacters(in: CharacterSet(charactersIn: ","))) ?? 0) / 1000
            } else if line.hasPrefix("Non-2xx or 3xx responses:"), let value = words.last.flatMap({ Int($0) }) {
                result.non2xx = value
            } else if line.hasPrefix("Socket errors:") {
                result.socketErrors = line.dropFirst("Socket errors:".count)
                    .split(whereSeparator: { $0 == " " || $0 == "," }).compactMap { Int($0) }.reduce(0, +)
            }
        }
        guard result.requests >= 0, result.requestsPerSecond >= 0, result.p50Milliseconds >= 0, result.p99Milliseconds >= 0 else {
            throw BenchError("cannot read wrk's output (expected 'N requests in', 'Requests/sec:' and the --latency 50% and 99% lines):\n\(text)")
        }
        return result
    }

    /// A wrk duration such as `812.00us`, `1.23ms`, `2.00s` or `1.50m`, in milliseconds.
    static func milliseconds<S: StringProtocol>(_ text: S) -> Double? {
        let units: [(suffix: String, scale: Double)] = [("us", 0.001), ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for unit in units where text.hasSuffix(unit.suffix) {
            if let value = Double(text.dropLast(unit.suffix.count)) { return value * unit.scale }
        }
        return nil
    }
}

/// Runs wrk against one target and reads its report.
enum WrkRun {
    /// `wrk -t threads -c connections -d seconds --latency -H 'Host: host' [-s script] url`, bounded in time.
    static func run(
        url: String, host: String, threads: Int, connections: Int, seconds: Int, script: String? = nil, logDirectory: String, file: String
    ) async throws -> ProxyLoadResult {
        var arguments = ["wrk", "-t", String(threads), "-c", String(connections), "-d", "\(seconds)s", "--timeout", "5s", "--latency", "-H", "Host: \(host)"]
        if let script { arguments += ["-s", script] }
        arguments.append(url)
        let output = try await BenchChild.output(of: arguments, file: file, logDirectory: logDirectory, timeout: .seconds(seconds + 30))
        return try ProxyLoadResult.parse(output)
    }

    /// Writes (once per directory and size) a wrk script that sends every request as a PUT with a
    /// body of `bytes` bytes, and returns its path.
    static func uploadScript(bytes: Int, directory: String) throws -> String {
        let path = "\(directory)/upload-\(bytes).lua"
        if !FileManager.default.fileExists(atPath: path) {
            let script = """
                wrk.method = "PUT"
                wrk.headers["Content-Type"] = "application/octet-stream"
                wrk.body = string.rep("u", \(bytes))

                """
            try script.write(toFile: path, atomically: true, encoding: .utf8)
        }
        return path
    }
}
