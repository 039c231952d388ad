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

    @Test(
        "a lifetime that is not one, or past a hundred years, is refused with the units it takes; none crashes",
        arguments: [("99999999999999999999s", "hundred years"), ("36600d", "hundred years"), ("10x", "s, m, h or d"), ("0", "positive")])
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
