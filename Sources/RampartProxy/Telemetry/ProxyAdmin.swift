import Foundation
import Hummingbird
import Logging
import NIOCore

/// The proxy's admin port (Istio's 15020): Prometheus metrics, readiness, and what config is in force.
enum ProxyAdmin {
    /// A request on the admin port, with the address it came from.
    struct AdminRequestContext: RequestContext, RemoteAddressRequestContext {
        var coreContext: CoreRequestContextStorage
        let remoteAddress: SocketAddress?

        init(source: ApplicationRequestContextSource) {
            coreContext = .init(source: source)
            remoteAddress = source.channel.remoteAddress
        }
    }

    /// Builds the admin application. `quit` starts the proxy's graceful shutdown.
    static func make(
        host: String, port: Int, context: ProxyContext, metricsText: @escaping @Sendable () -> String,
        quit: @escaping @Sendable () async -> Void = {}, onRunning: @escaping @Sendable (Int) async -> Void
    ) -> Application<RouterResponder<AdminRequestContext>> {
        let router = Router(context: AdminRequestContext.self)
        router.get("/healthz/ready") { _, _ -> Response in readiness(context) }
        // pilot-agent's /quitquitquit, which a Kubernetes Job's container calls when its work is
        // done so that the sidecar exits too: POST only, from the proxy's own host only.
        router.on("/quitquitquit", method: .post) { _, request -> Response in
            guard Self.isLoopback(request.remoteAddress) else {
                return Response(status: .forbidden, body: ResponseBody(byteBuffer: ByteBuffer(string: "Only requests from localhost are allowed\n")))
            }
            context.logger.notice("/quitquitquit: shutting down")
            Task { await quit() }
            return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "OK")))
        }
        router.get("/quitquitquit") { _, _ -> Response in
            Response(status: .methodNotAllowed, headers: [.allow: "POST"], body: ResponseBody(byteBuffer: ByteBuffer(string: "Method Not Allowed\n")))
        }
        router.get("/stats/prometheus") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: metricsText()))
            )
        }
        router.get("/config_dump") { _, _ -> Response in
            let data = (try? JSONSerialization.data(withJSONObject: Self.configDump(context), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "rampart-proxy-admin"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: context.logger
        )
    }

    /// Whether a peer is on this host: an IPv4 or IPv6 loopback address (IPv4-mapped included).
    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }

    /// The status port (Istio's 15021, which pilot-agent serves for probes): readiness alone, so
    /// that it can listen where the admin port's metrics and config dump should not.
    static func makeStatus(
        host: String, port: Int, context: ProxyContext, onRunning: @escaping @Sendable (Int) async -> Void
    ) -> Application<RouterResponder<BasicRequestContext>> {
        let router = Router()
        router.get("/healthz/ready") { _, _ -> Response in readiness(context) }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "rampart-proxy-status"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: context.logger
        )
    }

    /// 200 `ready` once the proxy has an identity and its config; 503 with what it still lacks.
    static func readiness(_ context: ProxyContext) -> Response {
        let problems = readinessProblems(context)
        return Response(
            status: problems.isEmpty ? .ok : .serviceUnavailable,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: problems.isEmpty ? "ready\n" : problems.joined(separator: "\n") + "\n"))
        )
    }

    /// Why the proxy is not ready: no identity, or no config yet.
    static func readinessProblems(_ context: ProxyContext) -> [String] {
        var problems: [String] = []
        if context.identity.current == nil { problems.append("no workload identity loaded") }
        if context.config.current == nil { problems.append("no config received from the control plane") }
        return problems
    }

    /// A summary of the identity and config in force.
    static func configDump(_ context: ProxyContext) -> [String: Any] {
        let formatter = ISO8601DateFormatter()
        var object: [String: Any] = [
            "workload": context.workload.name, "namespace": context.workload.namespace, "labels": context.workload.labels,
            "control_plane_connected": context.config.isConnected,
        ]
        if let identity = context.identity.current?.identity {
            object["identity"] = ["spiffe_id": identity.spiffeID.string, "serial": identity.serial, "not_after": formatter.string(from: identity.notAfter)]
        }
        if let config = context.config.current {
            object["config"] = [
                "nonce": config.nonce, "config_version": config.configVersion, "applied_at": formatter.string(from: config.appliedAt),
                "resources": config.resourceCounts, "authorization_policies": config.policies.policyCount,
                "mtls_mode": config.policies.peer.mode(port: context.appPort).rawValue,
                "services": config.registry.services.values.flatMap { $0.values.joined() }.map { service in
                    ["name": service.hostname(domain: config.registry.domain), "port": service.port, "endpoints": service.endpoints.map { "\($0.host):\($0.port)" }] as [String: Any]
                },
                "revoked_serials": config.revoked.serials.count,
            ] as [String: Any]
        }
        return object
    }
}
