import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import RampartAPI
import RampartAgent
import RampartIdentity
import ServiceLifecycle
import SwiftASN1
import X509

struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the node agent: bootstrap, keep the workload certificate rotated, serve the SPIFFE Workload API.",
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Bootstrap with a token or JWT, then renew over mTLS before expiry (the default subcommand)."
        )

        @Option(help: ArgumentHelp("The CA's gRPC address.", valueName: "host:port"))
        var caAddress: String = "127.0.0.1:15012"

        @Option(help: ArgumentHelp("The trust bundle that authenticates the CA (the CA's root-cert.pem).", valueName: "file"))
        var caRoot: String

        @Option(help: ArgumentHelp("A file holding a one-time bootstrap token from 'rampart token create'.", valueName: "file"))
        var tokenFile: String?

        @Option(help: ArgumentHelp("A file holding a JWT from an issuer the CA trusts (re-read whenever the agent must bootstrap).", valueName: "file"))
        var jwtFile: String?

        @Option(help: ArgumentHelp("Where to write cert-chain.pem, key.pem (mode 0600) and root-cert.pem.", valueName: "dir"))
        var out: String

        @Option(help: ArgumentHelp("Serve the SPIFFE Workload API (and the agent's status) on this Unix socket.", valueName: "path"))
        var socket: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("The socket's permissions, octal.", valueName: "mode"))
        var socketMode: String = "600"

        @Option(help: "The workload key type: ec-p256 or rsa-2048. A new key is made for every certificate.")
        var keyType: WorkloadKeyType = .ecP256

        @Option(parsing: .unconditional, help: "The certificate lifetime to ask for, such as 30s, 1h or 24h (default: 24h).", transform: TTL.parse)
        var ttl: TTL = TTL(argument: "24h")!

        @Option(parsing: .unconditional, help: "The share of the lifetime left when renewal is due: 0.5 renews at half the lifetime.")
        var graceRatio: Double = 0.5

        @Option(help: "Log level: trace, debug, info, notice, warning, error.")
        var logLevel: String = "info"

        func validate() throws {
            guard (tokenFile == nil) != (jwtFile == nil) else {
                throw ValidationError("give exactly one bootstrap credential: --token-file FILE or --jwt-file FILE")
            }
            _ = try HostPort.parse(caAddress, option: "--ca-address")
            try OptionValues.checkLogLevel(logLevel)
            // The CA's bounds (IssuancePolicy): a lifetime outside them would be refused on every try.
            guard ttl.seconds >= 10, ttl.seconds <= 90 * 86400 else {
                throw ValidationError("--ttl \(ttl.text): the CA issues certificates for 10s to 90d; ask for a lifetime in that range, such as 1h or 24h")
            }
            guard let mode = Int(socketMode, radix: 8), (0...0o777).contains(mode) else {
                throw ValidationError("--socket-mode \(socketMode): give octal permissions such as 600")
            }
            do {
                _ = try RenewalSchedule(graceRatio: graceRatio)
            } catch let error as AgentError {
                throw ValidationError(error.reason)
            }
        }

        func run() async throws {
            LoggingSetup.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info)
            let logger = Logger(label: "rampart.agent")
            let address = try HostPort.parse(caAddress, option: "--ca-address")
            let roots = try Self.readRoots(caRoot)
            // Checked before bootstrap, which spends a one-time token.
            try FileOptions.checkWritableFolder(out, option: "--out")
            // Without an identity to renew, the agent must bootstrap now: its credential must be readable.
            if !FileManager.default.fileExists(atPath: "\(out)/cert-chain.pem") {
                if let tokenFile {
                    _ = try FileOptions.readText(tokenFile, option: "--token-file", expected: "a file holding the token from 'rampart token create'", pem: false)
                }
                if let jwtFile {
                    _ = try FileOptions.readText(jwtFile, option: "--jwt-file", expected: "a file holding a JWT from an issuer the CA trusts", pem: false)
                }
            }
            if let socket {
                do {
                    try WorkloadAPIServer.prepare(socketPath: (socket as NSString).standardizingPath)
                } catch let error as AgentError {
                    throw ValidationError(error.reason)
                }
            }
            let credential: BootstrapCredentialSource = tokenFile.map { .tokenFile($0) } ?? .jwtFile(jwtFile!)
            let agent = NodeAgent(
                configuration: AgentConfiguration(
                    provider: GRPCIdentityProvider(host: address.host, port: address.port),
                    caRoots: roots, credential: credential, output: IdentityFiles(directory: out),
                    keyType: keyType, ttl: ttl.seconds, schedule: try RenewalSchedule(graceRatio: graceRatio)
                ),
                logger: logger
            )
            var services: [any Service] = [agent]
            if let socket {
                services.append(WorkloadAPIServer(socketPath: socket, mode: mode_t(Int(socketMode, radix: 8) ?? 0o600), agent: agent, logger: logger))
            }
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            logger.info("agent starting", metadata: ["agent.ca": "\(caAddress)", "agent.out": "\(out)", "agent.socket": "\(socket ?? "none")"])
            try await group.run()
        }

        static func readRoots(_ path: String) throws -> [Certificate] {
            let text = try FileOptions.readText(path, option: "--ca-root", expected: "the CA's root-cert.pem")
            let roots: [Certificate]
            do {
                roots = try PEMDocument.parseMultiple(pemString: text).map { try Certificate(pemDocument: $0) }
            } catch {
                throw ValidationError(
                    "--ca-root \(path) is not PEM certificates (\(PEMFault.describe(error, expected: "a CERTIFICATE"))): give the CA's root-cert.pem")
            }
            guard !roots.isEmpty else {
                throw ValidationError("--ca-root \(path) holds no certificate: give the CA's root-cert.pem")
            }
            return roots
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a running agent's identity, expiry, next renewal and last error."
        )

        @Option(help: ArgumentHelp("The agent's socket (its --socket).", valueName: "path"))
        var socket: String

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            guard FileManager.default.fileExists(atPath: socket) else {
                throw ValidationError("no agent socket at \(socket): is the agent running with --socket \(socket)?")
            }
            var info = stat()
            guard lstat(socket, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw ValidationError("\(socket) is not a socket: give the agent's --socket path")
            }
            let status: Rampart_Agent_V1_AgentStatus
            do {
                let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
                status = try await withGRPCClient(transport: transport) { client in
                    var options = CallOptions.defaults
                    options.timeout = .seconds(5)
                    return try await Rampart_Agent_V1_AgentStatusService.Client(wrapping: client).getStatus(Rampart_Agent_V1_GetStatusRequest(), options: options)
                }
            } catch let error as RPCError {
                throw CommandFailure("no agent answers on \(socket) (\(error.code)): is 'rampart agent --socket \(socket)' running?")
            }
            if json {
                print(Self.json(status))
            } else {
                print(Self.text(status))
            }
        }

        static func date(_ seconds: Int64) -> String? {
            seconds == 0 ? nil : Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(.iso8601)
        }

        static func text(_ status: Rampart_Agent_V1_AgentStatus) -> String {
            var lines = ["state:          \(status.state)"]
            lines.append("spiffe id:      \(status.spiffeID.isEmpty ? "(none yet)" : status.spiffeID)")
            if !status.serial.isEmpty { lines.append("serial:         \(status.serial)") }
            if let notAfter = date(status.notAfter) {
                lines.append("expires:        \(notAfter) (in \(status.notAfter - status.now) s)")
            }
            if let next = date(status.nextRenewal) {
                lines.append("next renewal:   \(next) (in \(max(0, status.nextRenewal - status.now)) s)")
            }
            lines.append("renewals:       \(status.renewals), failed attempts: \(status.failures)")
            lines.append("bundle roots:   \(status.bundleRoots)")
            lines.append("last error:     \(status.lastError.isEmpty ? "none" : "\(status.lastError) (at \(date(status.lastErrorAt) ?? "?"))")")
            return lines.joined(separator: "\n")
        }

        static func json(_ status: Rampart_Agent_V1_AgentStatus) -> String {
            var object: [String: Any] = [
                "state": status.state,
                "spiffe_id": status.spiffeID,
                "serial": status.serial,
                "renewals": status.renewals,
                "failures": status.failures,
                "bundle_roots": status.bundleRoots,
                "last_error": status.lastError.isEmpty ? NSNull() : status.lastError,
            ]
            object["not_before"] = date(status.notBefore) ?? NSNull()
            object["not_after"] = date(status.notAfter) ?? NSNull()
            object["next_renewal"] = date(status.nextRenewal) ?? NSNull()
            object["last_error_at"] = date(status.lastErrorAt) ?? NSNull()
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self)
        }
    }
}

extension WorkloadKeyType: ExpressibleByArgument {}
