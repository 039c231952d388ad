import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import RampartAPI
import RampartIdentity
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Serves the SPIFFE Workload API and the agent's status on a Unix socket, as a lifecycle service.
public struct WorkloadAPIServer: Service {
    /// The socket's path.
    public let socketPath: String
    /// The socket's mode (0600 by default: only the agent's user may connect).
    public let mode: mode_t
    let agent: NodeAgent
    let logger: Logger
    let onListening: @Sendable () -> Void

    public init(socketPath: String, mode: mode_t = 0o600, agent: NodeAgent, logger: Logger, onListening: @escaping @Sendable () -> Void = {}) {
        self.socketPath = (socketPath as NSString).standardizingPath
        self.mode = mode
        self.agent = agent
        self.logger = logger
        self.onListening = onListening
    }

    /// Removes a stale socket from an earlier run; refuses to touch anything that is not a socket,
    /// or a socket something still answers on (another agent's).
    public static func prepare(socketPath: String) throws {
        var info = stat()
        if lstat(socketPath, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw AgentError(.badConfiguration, "--socket \(socketPath) exists and is not a socket: choose another path or remove the file")
            }
            if isListenedOn(socketPath) {
                throw AgentError(
                    .badConfiguration, "--socket \(socketPath) is in use: another process (a running agent?) answers on it. Stop it, or choose another path")
            }
            unlink(socketPath)
        }
        let parent = (socketPath as NSString).deletingLastPathComponent
        if !parent.isEmpty, !FileManager.default.fileExists(atPath: parent) {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            } catch {
                throw AgentError(.badConfiguration, "cannot create the socket's directory \(parent): \(ReadableError.describe(error))")
            }
        }
        if socketPath.utf8.count >= 108 {
            throw AgentError(.badConfiguration, "--socket \(socketPath) is \(socketPath.utf8.count) bytes long; Unix socket paths must be under 108: choose a shorter path")
        }
    }

    /// Whether a process accepts connections on the Unix socket at `path`.
    static func isListenedOn(_ path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return connected == 0
    }

    /// How many calls one client connection may have open at once (watch streams included).
    public static let maxConcurrentStreams = 1000

    public func run() async throws {
        try Self.prepare(socketPath: socketPath)
        var config = HTTP2ServerTransport.Posix.Config.defaults
        // Advertised, so that clients queue what goes past it: unadvertised, NIO allows 100
        // streams and ends the whole connection (every watcher on it) at the 101st.
        config.http2.maxConcurrentStreams = Self.maxConcurrentStreams
        let transport = HTTP2ServerTransport.Posix(
            address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext, config: config)
        let server = GRPCServer(
            transport: transport,
            services: [WorkloadAPIService(agent: agent), AgentStatusService(agent: agent)],
            interceptorPipeline: [.apply(WorkloadHeaderInterceptor(), to: .services([Workload_SpiffeWorkloadAPI.descriptor]))]
        )
        let socketPath = self.socketPath
        let mode = self.mode
        let logger = self.logger
        let onListening = self.onListening
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                group.addTask {
                    _ = try await transport.listeningAddress
                    guard chmod(socketPath, mode) == 0 else {
                        throw AgentError(.badConfiguration, "cannot set mode \(String(mode, radix: 8)) on \(socketPath): \(String(cString: strerror(errno)))")
                    }
                    logger.info("Workload API listening", metadata: ["agent.socket": "\(socketPath)", "agent.socket_mode": "\(String(mode, radix: 8))"])
                    onListening()
                }
            }
        } onGracefulShutdown: {
            agent.state.finishWatchers()
            server.beginGracefulShutdown()
        }
        unlink(socketPath)
    }
}
