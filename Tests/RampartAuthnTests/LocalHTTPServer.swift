import Foundation

/// A static file server on 127.0.0.1 at a port the OS picks (Python's http.server), serving
/// `directory` over HTTP, or over HTTPS with a certificate and key given; it exits when the test
/// process closes its stdin. `/stall` answers its headers and the start of a body, then stalls;
/// `/hops/N/FILE` redirects N times before serving FILE.
final class LocalHTTPServer {
    let directory: TemporaryDirectory
    let port: Int
    /// `https` when the server was given a certificate, else `http`.
    let scheme: String
    private let process: Process
    private let input: Pipe

    static let script = """
        import http.server, os, ssl, sys, threading, time
        root = sys.argv[1]
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/hops/"):
                    # /hops/N/FILE redirects N times, then serves FILE.
                    _, _, hops, name = self.path.split("/", 3)
                    if int(hops) > 0:
                        self.send_response(302)
                        self.send_header("location", "/hops/%d/%s" % (int(hops) - 1, name))
                        self.send_header("content-length", "0")
                        self.end_headers()
                        return
                    self.path = "/" + name
                if self.path == "/stall":
                    self.send_response(200)
                    self.send_header("content-length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"keys": [')
                    self.wfile.flush()
                    time.sleep(300)
                    return
                path = os.path.normpath(os.path.join(root, self.path.split("?")[0].lstrip("/")))
                if not path.startswith(root) or not os.path.isfile(path):
                    self.send_response(404); self.end_headers(); return
                body = open(path, "rb").read()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if len(sys.argv) > 3:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[2], sys.argv[3])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        print(server.server_address[1], flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()
        """

    /// Starts the server; with `tls`, it serves HTTPS with that certificate chain and key (PEM files).
    init(tls: (certificateChain: String, key: String)? = nil) throws {
        directory = try TemporaryDirectory()
        scheme = tls == nil ? "http" : "https"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", Self.script, directory.path] + (tls.map { [$0.certificateChain, $0.key] } ?? [])
        let output = Pipe()
        input = Pipe()
        process.standardOutput = output
        process.standardInput = input
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "python3 http.server did not print its port"])
        }
        self.port = port
    }

    /// The URL of `path` on this server.
    func url(_ path: String) -> String { "\(scheme)://127.0.0.1:\(port)/\(path)" }

    /// Serves `contents` at `path`.
    func serve(_ contents: String, at path: String) throws {
        let target = directory.file(path)
        try FileManager.default.createDirectory(
            atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try contents.write(toFile: target, atomically: true, encoding: .utf8)
    }

    /// Stops the server and removes its files.
    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        directory.remove()
    }
}
