import Foundation
import Testing

/// Addresses and lifetimes given on the command line: refused with the option, the value and an
/// example, before anything starts; never a crash.
@Suite("address and lifetime options")
struct OptionParsingTests {
    @Test(
        "a malformed host:port is refused by every command that takes one, naming the option",
        arguments: [
            ("[::1", "[IPv6 address]:port"), ("::1", "in brackets"), ("http://127.0.0.1:1", "without a scheme"),
            ("256.1.1.1:80", "neither an IPv4 address nor a host name"), ("1.2.3:80", "neither an IPv4 address nor a host name"),
            ("127.0.0.1", "expected host:port"), ("127.0.0.1:70000", "from 0 to 65535"), (":80", "the host is missing"),
        ])
    func addresses(value: String, says: String) throws {
        let commands: [[String]] = [
            ["status", "--admin", value],
            ["cert", "request", "--ca", value, "--root-cert", "/nonexistent", "--csr", "/nonexistent", "--token", "t"],
            ["agent", "--ca-address", value, "--ca-root", "/nonexistent", "--out", "/tmp/unused", "--token-file", "/nonexistent"],
            ["proxy", "--workload", "w", "--namespace", "n", "--app", "127.0.0.1:1", "--identity-dir", "/tmp", "--ca-root", "/nonexistent",
             "--control-plane", value],
            ["ca", "serve", "--state", "/nonexistent", "--listen", value],
        ]
        for command in commands {
            let result = try run(Paths.rampart, command, timeout: 20)
            #expect(result.status != 0 && result.status < 128, "\(command): status \(result.status)\n\(result.stderr)")
            #expect(result.stderr.contains(value) && result.stderr.contains(says), "\(command):\n\(result.stderr)")
            #expect(!result.stderr.contains("Fatal error"), "\(command):\n\(result.stderr)")
        }
    }

    @Test("the ready line writes an IPv6 listener as the options take it, in brackets")
    func readyLineIPv6() throws {
        let ca = try CAProcess(label: "ready-ipv6")
        let serve = try ServiceProcess(
            Paths.rampart, ["ca", "serve", "--state", ca.state, "--listen", "[::1]:0", "--admin", "127.0.0.1:0"],
            logFile: "\(ca.directory)/serve.log", marker: "rampart ca ready")
        defer { serve.stop() }
        #expect(serve.readyLine.contains("grpc=[::1]:") && serve.readyLine.contains(" admin=127.0.0.1:"), "\(serve.readyLine)")
        let port = try #require(serve.port(after: "grpc=[::1]:"))
        #expect(port > 0)
    }

    @Test(
        "a lifetime that is not one, or past a hundred years, is refused with the units it takes; none crashes",
        arguments: [
            ("99999999999999999999s", "hundred years"), ("36600d", "hundred years"), ("10x", "s, m, h or d"), ("0", "positive"), ("-5m", "positive"),
            ("10m10", "every number with its unit"), ("0.1s", "shorter than a second"),
        ])
    func lifetimes(value: String, says: String) throws {
        for command in [
            ["token", "create", "--state", "/nonexistent", "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b", "--ttl", value],
            ["cert", "sign", "--state", "/nonexistent", "--csr", "/nonexistent", "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b", "--ttl", value],
            ["cert", "request", "--ca", "127.0.0.1:1", "--root-cert", "/nonexistent", "--csr", "/nonexistent", "--token", "t", "--ttl", value],
        ] {
            let result = try run(Paths.rampart, command, timeout: 20)
            #expect(result.status != 0 && result.status < 128, "\(command): status \(result.status)\n\(result.stderr)")
            #expect(result.stderr.contains("--ttl") && result.stderr.contains(says), "\(command):\n\(result.stderr)")
        }
    }
}

/// A negative number given to a numeric option reaches the option's own check, rather than being
/// read as an unknown option that leaves the value missing.
@Suite("negative numbers")
struct NegativeNumberTests {
    @Test(
        "a negative --duration or --timeout is refused by the range it breaks",
        arguments: [
            (["bench", "ca", "--duration", "-5"], "--duration must be 1…600 seconds"),
            (["bench", "proxy", "--duration", "-5"], "--duration must be 1…600 seconds"),
            (["cert", "request", "--ca", "127.0.0.1:1", "--root-cert", "x", "--csr", "y", "--token", "t", "--timeout", "-1"],
             "--timeout must be a positive number of seconds"),
        ])
    func negative(command: [String], says: String) throws {
        let result = try run(Paths.rampart, command, timeout: 20)
        #expect(result.status == 64 && result.stderr.contains(says) && !result.stderr.contains("Missing value"), "\(result.stderr)")
    }
}

/// Files and sockets a command would write or take, checked before it does anything that cannot be
/// undone: spending a token, issuing a certificate, or taking another agent's socket.
@Suite("output files and sockets")
struct OutputCheckTests {
    @Test("cert request refuses an --out that is one of its inputs or cannot be written, before contacting the CA")
    func certRequestOut() throws {
        let dir = try Paths.temporaryDirectory("out-checks")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (csr, key) = try OpenSSL.csr(in: dir, name: "w")
        try "not a root".write(toFile: "\(dir)/root.pem", atomically: true, encoding: .utf8)
        let keyBefore = try String(contentsOfFile: key, encoding: .utf8)
        let base = ["cert", "request", "--ca", "127.0.0.1:1", "--root-cert", "\(dir)/root.pem", "--csr", csr]
        let cases: [(extra: [String], says: String)] = [
            (["--cert", csr, "--key", key, "--out", key], "is the --key file"),
            (["--token", "t", "--out", csr], "is the --csr file"),
            (["--token", "t", "--out", "\(dir)/missing/chain.pem"], "does not exist"),
            (["--token", "t", "--out", dir], "is a folder"),
        ]
        for item in cases {
            let result = try run(Paths.rampart, base + item.extra, timeout: 20)
            #expect(result.status == 64 && result.stderr.contains("--out") && result.stderr.contains(item.says), "\(item.extra): \(result.stderr)")
            #expect(!result.stderr.contains("127.0.0.1:1"), "the CA was contacted: \(result.stderr)")
        }
        #expect(try String(contentsOfFile: key, encoding: .utf8) == keyBefore)
    }

    @Test("cert request names a --root-cert that is not certificates and a --key that is not --cert's, before contacting the CA")
    func certRequestCredentials() throws {
        let ca = try CAProcess(label: "request-credentials")
        let (csr, _) = try OpenSSL.csr(in: ca.directory, name: "w")
        let chain = "\(ca.directory)/chain.pem"
        let signed = try rampart("cert", "sign", "--state", ca.state, "--csr", csr, "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b")
        try #require(signed.succeeded, "\(signed.stderr)")
        try signed.stdout.write(toFile: chain, atomically: true, encoding: .utf8)
        let (_, otherKey) = try OpenSSL.csr(in: ca.directory, name: "other")
        let base = ["cert", "request", "--ca", "127.0.0.1:1", "--csr", csr]
        let cases: [(extra: [String], says: String)] = [
            (["--root-cert", csr, "--token", "t"], "--root-cert \(csr) holds no PEM certificate"),
            (["--root-cert", ca.rootPath, "--cert", chain, "--key", otherKey], "is not the key of --cert"),
            (["--root-cert", ca.rootPath, "--cert", chain, "--key", csr], "is not a PEM private key"),
        ]
        for item in cases {
            let result = try run(Paths.rampart, base + item.extra, timeout: 20)
            #expect(result.status == 64 && result.stderr.contains(item.says), "\(item.extra): \(result.stderr)")
            #expect(!result.stderr.contains("transportError"), "\(result.stderr)")
        }
    }

    @Test("cert list refuses a --spiffe-id that is not one rather than listing nothing")
    func certListFilter() throws {
        let ca = try CAProcess(label: "list-filter")
        let result = try run(Paths.rampart, ["cert", "list", "--state", ca.state, "--spiffe-id", "cluster.local/ns/a/sa/b"], timeout: 20)
        #expect(result.status == 64 && result.stderr.contains("--spiffe-id cluster.local/ns/a/sa/b is not a SPIFFE ID"), "\(result.stderr)")
        #expect(try rampart("cert", "list", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b").succeeded)
    }

    @Test("token create fails when its token cannot be delivered; agent status fails with status 1 when no agent answers")
    func undeliveredAndUnanswered() throws {
        let ca = try CAProcess(label: "out-checks")
        let full = try run("/bin/sh", ["-c", "'\(Paths.rampart)' token create --state '\(ca.state)' --spiffe-id spiffe://cluster.local/ns/a/sa/b > /dev/full"])
        #expect(full.status == 1 && full.stderr.contains("not delivered"), "\(full.status): \(full.stderr)")
        // A socket file nobody listens on: what a crashed agent leaves.
        let stale = "\(ca.directory)/stale.sock"
        let made = try run("python3", ["-c", "import socket; s = socket.socket(socket.AF_UNIX); s.bind('\(stale)'); s.close()"])
        #expect(made.succeeded, "\(made.stderr)")
        let status = try run(Paths.rampart, ["agent", "status", "--socket", stale], timeout: 20)
        #expect(status.status == 1 && status.stderr.contains("no agent answers"), "\(status.status): \(status.stderr)")
    }

    @Test("an agent refuses a socket another process answers on, and an --out that is a file, before bootstrapping")
    func agentSocketAndOut() throws {
        let ca = try CAProcess(label: "agent-checks")
        let socket = "\(ca.directory)/live.sock"
        let listener = try ServiceProcess(
            "/usr/bin/python3",
            ["-c", "import signal, socket, sys, time; signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM]); s = socket.socket(socket.AF_UNIX); s.bind('\(socket)'); s.listen(1); print('listening', flush=True); time.sleep(60)"],
            logFile: "\(ca.directory)/listener.log", marker: "listening")
        defer { listener.stop() }
        try "t".write(toFile: "\(ca.directory)/token", atomically: true, encoding: .utf8)
        let base = ["agent", "--ca-address", "127.0.0.1:1", "--ca-root", ca.rootPath, "--token-file", "\(ca.directory)/token"]
        let taken = try run(Paths.rampart, base + ["--out", "\(ca.directory)/out", "--socket", socket], timeout: 20)
        #expect(taken.status == 64 && taken.stderr.contains("is in use"), "\(taken.stderr)")
        #expect(FileManager.default.fileExists(atPath: socket), "the live socket was removed")
        let fileOut = try run(Paths.rampart, base + ["--out", ca.rootPath], timeout: 20)
        #expect(fileOut.status == 64 && fileOut.stderr.contains("is not a folder"), "\(fileOut.stderr)")
        let folderToken = try run(
            Paths.rampart, ["agent", "--ca-address", "127.0.0.1:1", "--ca-root", ca.rootPath, "--token-file", ca.directory, "--out", "\(ca.directory)/out2"],
            timeout: 20)
        #expect(folderToken.status == 64 && folderToken.stderr.contains("--token-file") && folderToken.stderr.contains("is a folder"), "\(folderToken.stderr)")
    }
}

/// `cert request` against a running CA: what went wrong at the other end, in words.
@Suite("cert request failures")
struct CertRequestFailureTests {
    @Test("a wrong root, the admin port and a closed port are each named; with the right ones the chain is issued")
    func failuresInWords() throws {
        let ca = try CAProcess(label: "request-failures")
        try ca.start()
        defer { ca.stop() }
        let other = try CAProcess(label: "request-other-root")
        let (csr, _) = try OpenSSL.csr(in: ca.directory, name: "w")
        func request(_ address: String, root: String, token: String) throws -> CommandResult {
            try run(Paths.rampart, ["cert", "request", "--ca", address, "--root-cert", root, "--csr", csr, "--token", token], timeout: 30)
        }
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b").trimmedOutput
        let cases: [(address: String, root: String, says: String)] = [
            ("127.0.0.1:\(ca.grpcPort)", other.rootPath, "does not chain to --root-cert"),
            ("127.0.0.1:\(ca.adminPort)", ca.rootPath, "admin port"),
            ("127.0.0.1:1", ca.rootPath, "connection refused"),
        ]
        for item in cases {
            let result = try request(item.address, root: item.root, token: token)
            #expect(result.status == 1 && result.stderr.contains(item.says), "\(item.address): \(result.stderr)")
            #expect(!result.stderr.contains("NIOSSL") && !result.stderr.contains("errno") && !result.stderr.contains(".swift"), "\(result.stderr)")
        }
        // None of those spent the token.
        let issued = try request("127.0.0.1:\(ca.grpcPort)", root: ca.rootPath, token: token)
        #expect(issued.succeeded && issued.stdout.contains("BEGIN CERTIFICATE"), "\(issued.stderr)")
        let refused = try request("127.0.0.1:\(ca.grpcPort)", root: ca.rootPath, token: token)
        #expect(refused.status == 1 && refused.stderr.contains("the CA refused the request"), "\(refused.stderr)")
    }

    @Test("a peer that takes the connection and never answers is given up on at --timeout, with a message")
    func silentPeer() throws {
        // A socket that listens and never accepts: the kernel completes the handshake, nothing answers.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        try #require(bound == 0 && listen(listener, 8) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let ca = try CAProcess(label: "request-silent")
        let (csr, _) = try OpenSSL.csr(in: ca.directory, name: "s")
        let started = Date()
        let result = try run(
            Paths.rampart, ["cert", "request", "--ca", "127.0.0.1:\(port)", "--root-cert", ca.rootPath, "--csr", csr, "--token", "t", "--timeout", "2"],
            timeout: 30)
        #expect(result.status == 1 && !result.stderr.isEmpty, "\(result.stderr)")
        #expect(Date().timeIntervalSince(started) < 20, "it waited \(Date().timeIntervalSince(started)) s")
        #expect(!result.stderr.contains(".swift"), "\(result.stderr)")
    }
}

/// Values checked before a command runs: log levels, namespaces, serials, revocation reasons.
@Suite("option values")
struct OptionValueTests {
    @Test("each bad value is refused with its option and what to give")
    func refused() throws {
        let cases: [(arguments: [String], says: String)] = [
            (["ca", "serve", "--state", "/nonexistent", "--log-level", "verbose"], "--log-level verbose"),
            (["agent", "--ca-root", "/nonexistent", "--out", "/tmp/unused", "--token-file", "/nonexistent", "--log-level", "loud"], "--log-level loud"),
            (["analyze", "--root-namespace", "Bad NS", "/nonexistent"], "--root-namespace \"Bad NS\""),
            (["authz", "check", "--policies", "/nonexistent", "--request", "/nonexistent", "--root-namespace", ""], "--root-namespace \"\""),
            (["get", "ap", "-n", "Bad_NS", "--state", "/nonexistent"], "-n \"Bad_NS\""),
            (["delete", "ap", "x", "-n", "UPPER", "--state", "/nonexistent"], "-n \"UPPER\""),
            (["cert", "show", "--state", "/nonexistent", "zz"], "not hexadecimal"),
            (["cert", "revoke", "--state", "/nonexistent", "0a", "--reason", "a\nb"], "control character"),
            (["analyze", "-", "-"], "give - once"),
            (["bench", "authz", "--policies", "10,,20"], "--policies 10,,20"),
            (["bench", "proxy", "--grpc", "--streams", "0"], "--streams must be 1…1000"),
            // A negative number is a value, not an option.
            (["bench", "authz", "--workloads", "-3"], "--workloads must be 1…100000"),
            (["bench", "renew", "--agents", "-1"], "--agents must be 1…20000"),
            (["bench", "proxy", "--connections", "-2"], "--connections must be 1…10000"),
            (["bench", "proxy", "--proxy-event-loops", "-1"], "--proxy-event-loops must be 1…64"),
            (["agent", "--ca-root", "/nonexistent", "--out", "/tmp/unused", "--token-file", "/nonexistent", "--grace-ratio", "-0.5"], "--grace-ratio -0.5"),
            (["proxy", "--workload", "w", "--namespace", "n", "--app", "127.0.0.1:1", "--identity-dir", "/tmp", "--ca-root", "/nonexistent",
              "--upstream-timeout", "-5"], "--upstream-timeout"),
            (["authz", "check", "--policies", Paths.packageRoot.appendingPathComponent("policies").path, "--request", "/tmp"], "give one request file"),
            (["delete", "-f", "/nonexistent.yaml", "ap/foo", "--state", "/nonexistent"], "ap/foo follows -f"),
            (["help", "bogus"], "'bogus' is not a command of 'rampart': use one of: ca, agent"),
            (["authz", "check", "--policies", "/nonexistent", "--request", "a.yaml", "--request", "b.yaml"], "--request is given 2 times"),
            (["help", "cert", "lst"], "'lst' is not a command of 'rampart cert'"),
            (["help", "analyze", "x"], "'rampart analyze' has no subcommands"),
        ]
        for item in cases {
            let result = try run(Paths.rampart, item.arguments, timeout: 20)
            #expect(result.status == 64 && result.stderr.contains(item.says), "\(item.arguments): \(result.status) \(result.stderr)")
        }
    }

    @Test("help for a command that exists prints its help and exits 0")
    func helpTopics() throws {
        for topics in [["help"], ["help", "cert", "list"], ["help", "ca", "serve"], ["help", "agent", "status"]] {
            let result = try run(Paths.rampart, topics, timeout: 20)
            #expect(result.status == 0 && result.stdout.contains("USAGE: rampart"), "\(topics): \(result.status) \(result.stderr)")
        }
    }
}

/// A store changed outside Rampart (a value of the wrong type, a table dropped) is reported as
/// such, without the database library's own text.
@Suite("stores changed outside Rampart")
struct AlteredStoreTests {
    @Test("a store file replaced by a folder is named as such, not as a permission problem")
    func storeIsAFolder() throws {
        let ca = try CAProcess(label: "store-folder")
        try FileManager.default.removeItem(atPath: "\(ca.state)/rampart.sqlite")
        try FileManager.default.createDirectory(atPath: "\(ca.state)/rampart.sqlite", withIntermediateDirectories: false)
        for command in [["cert", "list"], ["audit", "verify"], ["get", "ap"]] {
            let result = try run(Paths.rampart, command + ["--state", ca.state])
            #expect(!result.succeeded && result.stderr.contains("is a folder, not the store"), "\(command): \(result.stderr)")
        }
    }

    @Test("audit verify, audit list and cert list name the alteration and the way out")
    func altered() throws {
        for statement in ["UPDATE audit_events SET time = 'notadate'", "DROP TABLE audit_events", "UPDATE issued_certificates SET not_after = 'x'"] {
            let ca = try CAProcess(label: "altered-store")
            _ = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b")
            let (csr, _) = try OpenSSL.csr(in: ca.directory, name: "w")
            _ = try rampart("cert", "sign", "--state", ca.state, "--csr", csr, "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b")
            let altered = try run("python3", ["-c", "import sqlite3; c = sqlite3.connect('\(ca.state)/rampart.sqlite'); c.execute(\"\(statement)\"); c.commit()"])
            try #require(altered.succeeded, "\(altered.stderr)")
            let command = statement.contains("issued_certificates") ? ["cert", "list", "--state", ca.state] : ["audit", "verify", "--state", ca.state]
            let result = try run(Paths.rampart, command)
            #expect(result.status == 1 && result.stderr.contains("changed outside Rampart") && result.stderr.contains("backup"), "\(statement): \(result.stderr)")
            #expect(!result.stderr.contains("SELECT") && !result.stderr.contains("row:"), "\(result.stderr)")
        }
    }
}

/// A listen address another process holds is refused before any service starts.
@Suite("listen addresses in use")
struct ListenAddressTests {
    @Test("ca serve and proxy name the option whose address is taken, without the start-up noise of services stopping")
    func taken() throws {
        let ca = try CAProcess(label: "taken-port")
        let holder = try ServiceProcess(
            "/usr/bin/python3",
            ["-c", "import signal, socket, time; signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM]); s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1); print('listening', s.getsockname()[1], flush=True); time.sleep(60)"],
            logFile: "\(ca.directory)/holder.log", marker: "listening")
        defer { holder.stop() }
        let port = try #require(holder.port(after: "listening "))
        let serve = try run(Paths.rampart, ["ca", "serve", "--state", ca.state, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:\(port)"], timeout: 20)
        #expect(serve.status == 64 && serve.stderr.contains("--admin 127.0.0.1:\(port)") && serve.stderr.contains("already listens"), "\(serve.stderr)")
        #expect(!serve.stderr.contains("CancellationError"), "\(serve.stderr)")
        let proxy = try run(
            Paths.rampart,
            ["proxy", "--workload", "w", "--namespace", "n", "--app", "127.0.0.1:1", "--identity-dir", "\(ca.directory)/none", "--ca-root", ca.rootPath,
             "--inbound", "127.0.0.1:\(port)", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"], timeout: 20)
        #expect(proxy.status == 64 && proxy.stderr.contains("--inbound 127.0.0.1:\(port)") && proxy.stderr.contains("already listens"), "\(proxy.stderr)")
    }
}
