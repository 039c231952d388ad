import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import RampartAuthn
import RampartControlPlane
import RampartIdentity
import RampartPKI

struct CA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Create and run the certificate authority.",
        subcommands: [Init.self, Serve.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a CA state directory: a self-signed root, or Istio's plug-in CA files, and the store."
        )

        @OptionGroup var stateOptions: StateOptions

        @Option(help: "The trust domain identities are issued in.")
        var trustDomain: String = "cluster.local"

        @Option(help: "The root key type: ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096 (ignored with --plugin-certs).")
        var keyType: KeyAlgorithm = .ecP256

        @Option(help: ArgumentHelp("A directory in Istio's plug-in layout: ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem.", valueName: "dir"))
        var pluginCerts: String?

        func validate() throws {
            do { try TrustDomain(trustDomain).checkIssuable() } catch {
                throw ValidationError("--trust-domain \(trustDomain): \(error.reason)")
            }
        }

        func run() async throws {
            let state = StateDirectory(stateOptions.state)
            let domain = try TrustDomain(trustDomain)
            let outcome = try await CAInitializer.run(
                state: state, trustDomain: domain, keyAlgorithm: keyType, pluginDirectory: pluginCerts, actor: Operator.actor)
            print("initialized \(outcome.origin) CA for trust domain \(domain.name) in \(state.path)")
            print("  signing certificate serial \(outcome.authority.certificate.serialNumber.hexString), valid until \(ISO8601DateFormatter().string(from: outcome.authority.certificate.notValidAfter))")
            print("  trust bundle: \(state.rootCertPath)")
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve Istio's CA API and the proxies' config stream over gRPC/TLS, and admin HTTP (/healthz/ready, /metrics, /debug/syncz)."
        )

        @OptionGroup var stateOptions: StateOptions

        @Option(help: ArgumentHelp("gRPC listen address; port 0 picks a free port.", valueName: "host:port"))
        var listen: String = "127.0.0.1:15012"

        @Option(help: ArgumentHelp("Admin HTTP listen address.", valueName: "host:port"))
        var admin: String = "127.0.0.1:15014"

        @Option(name: .customLong("jwt-issuer"), help: ArgumentHelp("A trusted JWT issuer (iss); pair each with a --jwks.", valueName: "iss"))
        var jwtIssuers: [String] = []

        @Option(name: .customLong("jwks"), help: ArgumentHelp("The JWKS of the matching --jwt-issuer: a file or an http(s) URL.", valueName: "file|url"))
        var jwks: [String] = []

        @Option(help: "The audience JWTs must carry.")
        var jwtAudience: String = "istio-ca"

        @Option(help: ArgumentHelp("A PEM file of CA certificates trusted beside the system's roots when a --jwks URL is https (a private CA's key server).", valueName: "file"))
        var jwksExtraRootCA: String?

        @Option(help: "The mesh's root namespace: its policies in the config store apply mesh-wide.")
        var rootNamespace: String = "istio-system"

        @Option(parsing: .unconditional, help: ArgumentHelp("How long a disconnected proxy's registration and endpoints are kept, in seconds.", valueName: "seconds"))
        var registrationGrace: Double = 15

        @Option(help: "Log level: trace, debug, info, notice, warning, error.")
        var logLevel: String = "info"

        func validate() throws {
            guard registrationGrace.isFinite, registrationGrace >= 0, registrationGrace <= 86400 else {
                throw ValidationError("--registration-grace \(registrationGrace): expected seconds from 0 to 86400, such as 15")
            }
            try OptionValues.checkNamespace(rootNamespace, option: "--root-namespace")
            try OptionValues.checkLogLevel(logLevel)
            guard jwtIssuers.count == jwks.count else {
                throw ValidationError("give one --jwks for each --jwt-issuer (got \(jwtIssuers.count) issuers and \(jwks.count) key sources)")
            }
            for source in jwks where source.contains("://") && !source.hasPrefix("http://") && !source.hasPrefix("https://") {
                throw ValidationError("--jwks \(source): give a JWKS file or an http:// or https:// URL")
            }
            try HostPort.checkDistinct([(listen, "--listen"), (admin, "--admin")])
            try HostPort.checkFree(listen, option: "--listen")
            try HostPort.checkFree(admin, option: "--admin")
            _ = try jwksExtraRootCA.map(ExtraRootCertificates.option)
        }

        func run() async throws {
            LoggingSetup.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info)
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let grpc = try HostPort.parse(listen, option: "--listen")
            let adminAddress = try HostPort.parse(admin, option: "--admin")
            let configuration = CAServerConfiguration(
                state: StateDirectory(stateOptions.state),
                listenHost: grpc.host, listenPort: grpc.port,
                adminHost: adminAddress.host, adminPort: adminAddress.port,
                jwtIssuers: zip(jwtIssuers, jwks).map { TrustedIssuer(issuer: $0, keys: .init($1)) },
                jwtAudience: jwtAudience, rootNamespace: rootNamespace,
                registrationGrace: .milliseconds(Int64((registrationGrace * 1000).rounded())),
                jwksExtraRoots: try jwksExtraRootCA.map(ExtraRootCertificates.option)
            )
            let server = CAServer(configuration: configuration, logger: Logger(label: "rampart.ca"))
            try await HostPort.naming(["--listen": listen, "--admin": admin]) {
                try await server.run(metricsText: { MetricsHelp.annotate(registry.emitToString()) }) { addresses in
                    let line = "rampart ca ready grpc=\(HostPort.text(grpc.host, addresses.grpcPort)) admin=\(HostPort.text(adminAddress.host, addresses.adminPort))\n"
                    try? FileHandle.standardOutput.write(contentsOf: Data(line.utf8))
                }
            }
        }
    }
}

/// `host:port` parsing for listen options.
struct HostPort {
    let host: String
    let port: Int

    /// `host:port` as the listen options take it: an IPv6 host in brackets (`[::]:15012`).
    static func text(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Runs a server; when it cannot listen because an address is taken or not this machine's, the
    /// error names the options (flag and value) that could be at fault, and what to do.
    static func naming(_ options: KeyValuePairs<String, String>, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            let text = "\(error)"
            let given = options.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            if text.contains("Address already in use") {
                throw ValidationError(
                    "cannot listen: another process already holds one of the addresses (\(given)). Stop it, or give a free port (port 0 picks one)")
            }
            if text.contains("Cannot assign requested address") {
                throw ValidationError("cannot listen: one of the addresses (\(given)) is not an address of this machine. Give one it has, such as 127.0.0.1")
            }
            throw error
        }
    }

    /// Parses `host:port`: an IPv4 address, a host name, or an IPv6 address in brackets
    /// (`[::1]:15012`), and a port from 0 to 65535 (0 picks a free one where the option listens).
    static func parse(_ text: String, option: String) throws -> HostPort {
        let example = "such as 127.0.0.1:15012, localhost:15012 or [::1]:15012"
        if text.contains("://") {
            throw ValidationError("\(option) \(text): give host:port without a scheme, \(example)")
        }
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ValidationError("\(option) \(text): expected [IPv6 address]:port, such as [::1]:15012")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = text[text.index(close, offsetBy: 2)...]
            guard isIPv6(host) else {
                throw ValidationError("\(option) \(text): \(host) is not an IPv6 address; write [::1]:15012 for IPv6 loopback")
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ValidationError("\(option) \(text): expected host:port, \(example)")
            }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                throw ValidationError("\(option) \(text): put an IPv6 address in brackets, such as [::1]:15012")
            }
            guard !host.isEmpty else {
                throw ValidationError("\(option) \(text): the host is missing; use 127.0.0.1:\(portText) for loopback")
            }
            guard isIPv4(host) || isHostName(host) else {
                throw ValidationError("\(option) \(text): \(host) is neither an IPv4 address nor a host name, \(example)")
            }
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("\(option) \(text): the port must be a number from 0 to 65535, \(example)")
        }
        return HostPort(host: host, port: port)
    }

    /// Refuses, before any service starts, an address another process already listens on or
    /// that is not this machine's (port 0 always binds). A probe socket is bound and closed, with
    /// SO_REUSEADDR as the servers bind theirs, so a connection left in TIME_WAIT does not count.
    /// Refuses two listening options that name one address (the same port on the same host, or
    /// on a host and the wildcard): the second listener could not start.
    static func checkDistinct(_ listeners: [(text: String, option: String)]) throws {
        let wildcards: Set<String> = ["0.0.0.0", "::", "[::]", "*", ""]
        var seen: [(host: String, port: Int, option: String, text: String)] = []
        for (text, option) in listeners {
            let address = try parse(text, option: option)
            guard address.port != 0 else { continue }
            if let earlier = seen.first(where: { $0.port == address.port
                && ($0.host == address.host || wildcards.contains($0.host) || wildcards.contains(address.host)) })
            {
                throw ValidationError("\(earlier.option) \(earlier.text) and \(option) \(text) name the same address: give each its own port")
            }
            seen.append((address.host, address.port, option, text))
        }
    }

    static func checkFree(_ text: String, option: String) throws {
        let address = try parse(text, option: option)
        guard address.port != 0 else { return }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &found) == 0, let first = found else {
            throw ValidationError("\(option) \(text): the host \(address.host) cannot be resolved: give an address of this machine, such as 127.0.0.1")
        }
        defer { freeaddrinfo(found) }
        let descriptor = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 else { return }
        switch errno {
        case EADDRINUSE:
            throw ValidationError("\(option) \(text): another process already listens on this address: stop it, or give a free port (port 0 picks one)")
        case EADDRNOTAVAIL:
            throw ValidationError("\(option) \(text): \(address.host) is not an address of this machine: give one it has, such as 127.0.0.1")
        case EACCES:
            throw ValidationError("\(option) \(text): this user may not listen on port \(address.port) (ports below 1024 need privileges): give a port of 1024 or more")
        default:
            return
        }
    }

    private static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }

    /// Four dotted decimal numbers (inet_pton's strict form: not `1.2.3`, which the resolver
    /// would read as 1.2.0.3).
    private static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }

    /// A DNS name whose labels are letters, digits and '-', not one that looks like an address.
    private static func isHostName(_ text: String) -> Bool {
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        guard text.utf8.count <= 253, !labels.isEmpty else { return false }
        let sound = labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
        // Digits and dots alone are an address or nothing (1.2.3, 256.1.1.1).
        return sound && !text.allSatisfy { $0.isNumber || $0 == "." }
    }
}

extension KeyAlgorithm: ExpressibleByArgument {}
