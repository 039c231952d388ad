import Foundation
import NIOCore
@testable import RampartProxy
import Testing

@Suite("Access log")
struct AccessLogTests {
    @Test("each line is one JSON object that a JSON parser reads back, with escapes and nulls")
    func lineParses() throws {
        var record = RequestRecord(reporter: .destination, startTime: Date(timeIntervalSince1970: 1_800_000_000.25), protocolName: "HTTP/1.1")
        record.method = "GET"
        record.path = "/a\"b\\c\n\u{1}é"
        record.responseCode = 403
        record.responseFlags = "-"
        record.policy = "demo/deny-a"
        record.rule = 0
        record.dryRun = ["demo/x"]
        record.duration = 0.0125
        let line = AccessLog.line(record)
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["path"] as? String == "/a\"b\\c\n\u{1}é")
        #expect(object["response_code"] as? Int == 403)
        #expect(object["authz_policy"] as? String == "demo/deny-a")
        #expect(object["authz_rule"] as? Int == 0)
        #expect(object["authz_dry_run"] as? [String] == ["demo/x"])
        #expect(object["authority"] is NSNull)
        #expect(object["duration"] as? Int == 13)
        #expect(object["start_time"] as? String == "2027-01-15T08:00:00.250Z")
    }

    @Test("a line longer than its first buffer, with numbers of every size, reads back whole")
    func longLine() throws {
        var record = RequestRecord(reporter: .source, startTime: Date(timeIntervalSince1970: 0), protocolName: "HTTP/1.1")
        let path = "/" + String(repeating: "a\"\u{7}é/", count: 900)
        record.path = path
        record.userAgent = String(repeating: "agent ", count: 300)
        record.bytesReceived = Int.max
        record.bytesSent = 0
        record.responseCode = 200
        record.rule = -1
        record.upstreamServiceTime = 1_234_567
        record.dryRun = (0..<50).map { "ns/policy-\($0)" }
        let line = AccessLog.line(record)
        #expect(line.utf8.count > 4096)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["path"] as? String == path)
        #expect(object["user_agent"] as? String == record.userAgent)
        #expect((object["bytes_received"] as? NSNumber)?.int64Value == Int64.max)
        #expect(object["bytes_sent"] as? Int == 0)
        #expect(object["authz_rule"] as? Int == -1)
        #expect(object["upstream_service_time"] as? String == "1234567")
        #expect((object["authz_dry_run"] as? [String])?.count == 50)
    }

    @Test("timestamps are RFC 3339 UTC with milliseconds truncated, across day and year boundaries")
    func timestamps() throws {
        let cases: [(TimeInterval, String)] = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_798_761_599.9996, "2026-12-31T23:59:59.999Z"),
            (1_798_761_600.001, "2027-01-01T00:00:00.001Z"),
            (951_782_400.5, "2000-02-29T00:00:00.500Z"),
        ]
        for (seconds, expected) in cases {
            let record = RequestRecord(reporter: .source, startTime: Date(timeIntervalSince1970: seconds), protocolName: "HTTP/1.1")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(AccessLog.line(record).utf8)) as? [String: Any])
            #expect(object["start_time"] as? String == expected)
            #expect(AccessLog.textLine(record).hasPrefix("[\(expected)] "), "the text format's start time")
        }
    }
}

@Suite("Access log buffering")
struct AccessLogBufferingTests {
    private func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("rampart-access-\(UUID().uuidString).log").path
    }

    private func record(_ path: String) -> RequestRecord {
        var record = RequestRecord(reporter: .destination, startTime: Date(), protocolName: "HTTP/1.1")
        record.path = path
        record.responseCode = 200
        return record
    }

    private func lines(_ path: String) -> [Substring] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
    }

    @Test("lines wait in the buffer until flush, then arrive whole and in order, appended to what the file held")
    func flushWritesInOrder() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "earlier\n".write(toFile: path, atomically: false, encoding: .utf8)
        let log = try AccessLog(path: path, flushInterval: .seconds(3600))
        for index in 0..<3 { log.write(record("/\(index)")) }
        #expect(lines(path) == ["earlier"])
        log.flush()
        let written = lines(path)
        #expect(written.count == 4)
        #expect(written.first == "earlier")
        let paths = try written.dropFirst().map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])["path"] as? String
        }
        #expect(paths == ["/0", "/1", "/2"])
    }

    @Test("a full buffer is written without waiting for the interval")
    func fullBufferWrites() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AccessLog(path: path, flushInterval: .seconds(3600))
        let long = "/" + String(repeating: "x", count: 1000)
        for _ in 0..<100 { log.write(record(long)) }
        #expect(lines(path).count >= 60, "about 64 KiB of lines should have been written")
        log.flush()
        #expect(lines(path).count == 100)
    }

    @Test("a quiet log's lines are written by the timer within about an interval")
    func timerWrites() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AccessLog(path: path, flushInterval: .milliseconds(50))
        log.write(record("/quiet"))
        var found = false
        for _ in 0..<200 where !found {
            found = lines(path).count == 1
            if !found { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(found, "the buffered line was never written")
    }

    @Test("a log file that cannot be opened is refused, naming the path")
    func unopenable() throws {
        #expect {
            _ = try AccessLog(path: "/nonexistent-directory/access.log")
        } throws: { error in
            "\(error)".contains("/nonexistent-directory/access.log")
        }
        #expect(try !AccessLog(path: "off").isEnabled)
        #expect(try !AccessLog(path: nil).isEnabled)
    }
}

@Suite("Access log in Istio's text format")
struct AccessLogTextTests {
    @Test("an HTTP request's line has Istio's default text fields in order, absent ones as -")
    func httpLine() {
        var record = RequestRecord(reporter: .source, startTime: Date(timeIntervalSince1970: 1_800_000_000.409), protocolName: "HTTP/1.1")
        record.method = "GET"
        record.path = "/status/418?x=1"
        record.responseCode = 418
        record.responseFlags = "-"
        record.responseDetails = "via_upstream"
        record.bytesReceived = 0
        record.bytesSent = 135
        record.duration = 0.0042
        record.upstreamServiceTime = 4
        record.userAgent = "curl/8.0"
        record.requestID = "84961386-6d84-929d-98bd-c5aee93b5c88"
        record.authority = "httpbin:8000"
        record.upstreamHost = "10.44.1.27:15006"
        record.upstreamCluster = "outbound|8000||httpbin.foo.svc.cluster.local"
        record.downstreamLocalAddress = "127.0.0.1:15001"
        record.sourceAddress = "127.0.0.1:46520"
        #expect(AccessLog.textLine(record) == #"[2027-01-15T08:00:00.409Z] "GET /status/418?x=1 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/8.0" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:15006" outbound|8000||httpbin.foo.svc.cluster.local - 127.0.0.1:15001 127.0.0.1:46520 - default"#)
    }

    @Test("a TCP connection's line has - for method, path and protocol, 0 for its code, and no route")
    func tcpLine() {
        var record = RequestRecord(reporter: .destination, startTime: Date(timeIntervalSince1970: 0), protocolName: "TCP")
        record.responseCode = 0
        record.responseFlags = "-"
        record.bytesReceived = 49
        record.bytesSent = 98
        record.duration = 1.5
        record.upstreamHost = "127.0.0.1:3306"
        record.upstreamCluster = "inbound|3306||"
        record.requestedServerName = "outbound_.3306_._.mysql.db.svc.cluster.local"
        #expect(AccessLog.textLine(record) == #"[1970-01-01T00:00:00.000Z] "- - -" 0 - - - "-" 49 98 1500 - "-" "-" "-" "-" "127.0.0.1:3306" inbound|3306|| - - - outbound_.3306_._.mysql.db.svc.cluster.local -"#)
    }

    @Test("control characters in a value do not break the line; empty values are -")
    func oneLine() {
        var record = RequestRecord(reporter: .source, startTime: Date(timeIntervalSince1970: 0), protocolName: "HTTP/2")
        record.method = "GET"
        record.path = "/a\nb\u{7F}c"
        record.userAgent = ""
        let line = AccessLog.textLine(record)
        #expect(!line.contains("\n") && line.contains("\"GET /a b c HTTP/2\""), "\(line)")
        #expect(line.contains(" \"-\" \"-\" \"-\" \"-\" \"-\" "), "\(line)")
    }

    @Test("a TEXT log writes these lines to its file; JSON and TEXT are read in any case, nothing else")
    func textLog() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-text-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AccessLog(path: path, encoding: .text, flushInterval: .seconds(3600))
        var record = RequestRecord(reporter: .destination, startTime: Date(timeIntervalSince1970: 0), protocolName: "HTTP/1.1")
        record.method = "POST"
        record.path = "/orders"
        log.write(record)
        log.write(record)
        log.flush()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { $0 == AccessLog.textLine(record) }, "\(lines)")
        #expect(AccessLog.Encoding(option: "text") == .text && AccessLog.Encoding(option: "JSON") == .json)
        #expect(AccessLog.Encoding(option: "yaml") == nil)
    }
}
