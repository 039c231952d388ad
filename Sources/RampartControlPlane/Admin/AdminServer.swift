import Foundation
import Hummingbird
import Logging
import NIOCore

/// The admin HTTP port (Istio's 15014): readiness, Prometheus metrics and proxy sync status.
enum AdminServer {
    /// Builds the admin application. `metricsText` renders the Prometheus exposition;
    /// `beforeScrape` refreshes gauges that are computed from the clock; `syncz` renders the
    /// JSON of `/debug/syncz`.
    @_optimize(none)
    static func make(
        host: String,
        port: Int,
        ready: @escaping @Sendable () async -> Bool,
        metricsText: @escaping @Sendable () -> String,
        beforeScrape: @escaping @Sendable () -> Void,
        syncz: @escaping @Sendable () throws -> Data,
        onRunning: @escaping @Sendable (Int) async -> Void,
        logger: Logger
    ) -> Application<RouterResponder<BasicRequestContext>> {
        let router = Router()
        router.get("/healthz/ready") { _, _ -> Response in
            let isReady = await ready()
            return Response(
                status: isReady ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: isReady ? "ready\n" : "not ready\n"))
            )
        }
        router.get("/metrics") { _, _ -> Response in
            beforeScrape()
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: metricsText()))
            )
        }
        router.get("/debug/syncz") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: try syncz()))
            )
        }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "rampart-ca-admin"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }
}
