import ArgumentParser
import Foundation
import Logging
import Metrics
import NIOCore
import Prometheus
import RampartAuthn
import RampartControlPlane
import RampartProxy

/// `rampart proxy`: the companion sidecar that enforces the mesh's policies for one workload.
struct Proxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run a companion proxy: mTLS termination and policy enforcement inbound, service resolution and mTLS origination outbound."
    )

    @Option(help: ArgumentHelp("The workload's name, unique in its namespace.", valueName: "name"))
    var workload: String

    @Option(help: ArgumentHelp("The workload's namespace.", valueName: "ns"))
    var namespace: String

    @Option(help: ArgumentHelp("The workload's labels, which policy selectors match (app=reviews,version=v1).", valueName: "k=v,..."))
    var labels: String = ""

    @Option(help: ArgumentHelp("A service the workload serves, NAME:PORT (repeatable).", valueName: "name:port"))
    var service: [String] = []

    @Option(help: ArgumentHelp("The application's address; inbound requests are forwarded there.", valueName: "host:port"))
    var app: String

    @Option(help: ArgumentHelp("The inbound listener (mTLS termination and policy enforcement).", valueName: "host:port"))
    var inbound: String = "0.0.0.0:15006"

    @Option(help: ArgumentHelp("The address other proxies reach the inbound listener at (default: the listener's own).", valueName: "host:port"))
    var advertise: String?

    @Option(help: ArgumentHelp("The outbound listener applications send their requests to.", valueName: "host:port"))
    var outbound: String = "127.0.0.1:15001"

    @Option(help: ArgumentHelp("The control plane's gRPC address ('rampart ca serve').", valueName: "host:port"))
    var controlPlane: String = "127.0.0.1:15012"

    @Option(help: ArgumentHelp("The root that authenticates the control plane (the CA's root-cert.pem).", valueName: "file"))
    var caRoot: String

    @Option(help: ArgumentHelp("The node agent's output directory (cert-chain.pem, key.pem, root-cert.pem).", valueName: "dir"))
    var identityDir: String?

    @Option(help: ArgumentHelp("The node agent's SPIFFE Workload API socket ('rampart agent --socket').", valueName: "path"))
    var workloadAPI: String?

    @Option(help: ArgumentHelp("The admin listener: /stats/prometheus, /healthz/ready, /config_dump, POST /quitquitquit.", valueName: "host:port"))
    var admin: String = "127.0.0.1:15020"

    @Option(help: ArgumentHelp("A status listener serving /healthz/ready alone, as Istio's sidecars do on port 15021 (off unless given).", valueName: "host:port"))
    var status: String?

    @Option(help: ArgumentHelp("Where to write one JSON line per request: a file, - for standard output, or off. Lines are written at least once a second.", valueName: "path"))
    var accessLog: String = "-"

    @Option(help: "The access log's lines: JSON (one object per line) or TEXT (Istio's default text format), as Istio's accessLogEncoding.")
    var accessLogEncoding: String = "JSON"

    @Option(help: "The application's protocol: auto (HTTP/2 for gRPC, HTTP/1.1 otherwise), http, http2, grpc-web (a gRPC application over HTTP/2, with gRPC-Web calls from browsers bridged to gRPC, as on Istio's grpc-web ports), or tcp (opaque TCP, spliced at once: server-first protocols such as MySQL start without waiting).")
    var appProtocol: String = "auto"

    @Flag(
        name: .customLong("accept-http10"),
        help: "Serve HTTP/1.0 requests too (Istio's ISTIO_META_HTTP10). Without it they get 426 Upgrade Required, as from Istio's sidecars.")
    var acceptHTTP10 = false

    @Option(
        help: ArgumentHelp(
            "A listener for a mesh service's TCP port (repeatable): connections to LOCAL are carried over mTLS to the service, as an Istio Sidecar egress listener bound without capture carries them.",
            valueName: "local=service:port"))
    var outboundTCP: [String] = []

    @Option(help: "What to do with hosts outside the registry: ALLOW_ANY (forward in plaintext) or REGISTRY_ONLY (refuse with 502).")
    var outboundTrafficPolicy: String = "ALLOW_ANY"

    @Option(parsing: .unconditional, help: ArgumentHelp("How much of a request body the proxy holds within one read before forwarding it, in bytes. Requests and responses are passed on as they arrive, whatever their size, and gRPC calls over HTTP/2 stream both ways; a gRPC message read whole for or from an HTTP/1.1 application is held up to this size.", valueName: "bytes"))
    var maxBodyBytes: Int = 16 * 1024 * 1024

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "How long the upstream may take to answer a request, in seconds; 0 (the default, as on Istio's routes) sets no limit. An upstream that sends nothing for 5 minutes fails the request all the same (Envoy's stream idle timeout).",
            valueName: "seconds"))
    var upstreamTimeout: Int = 0

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "How often, in seconds, the metrics of open TCP connections and gRPC streams are brought up to date (Istio's tcp_reporting_duration); the rest is added when they end.",
            valueName: "seconds"))
    var tcpReportingDuration: Int = 15

    @Option(parsing: .unconditional, help: ArgumentHelp("Event-loop threads for the listeners and connections (default: one per CPU).", valueName: "n"))
    var eventLoops: Int?

    @Option(
        help: ArgumentHelp(
            "An OpenTelemetry collector to send a span for each HTTP request to, as Istio's opentelemetry tracing provider does: http://HOST:4317 for OTLP/gRPC, http://HOST:4318 for OTLP/HTTP (off unless given; OTEL_EXPORTER_OTLP_* variables apply as in other OpenTelemetry SDKs).",
            valueName: "url"))
    var tracingEndpoint: String?

    @Option(help: "How spans travel to the collector: grpc or http/protobuf.")
    var tracingProtocol: String = "grpc"

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "The percentage of new traces recorded (Istio's random sampling percentage, 1 by default); a request with a trace context keeps its caller's decision.",
            valueName: "percent"))
    var tracingSampling: Double = 1

    @Option(help: ArgumentHelp("A PEM file of CA certificates trusted beside the system's roots when fetching a JWKS over https (a private CA's key server).", valueName: "file"))
    var jwksExtraRootCA: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    /// The tracing the options ask for, if any.
    var tracingSettings: TracingSettings? {
        tracingEndpoint.map {
            TracingSettings(endpoint: $0, exportProtocol: TracingSettings.ExportProtocol(rawValue: tracingProtocol) ?? .grpc, samplingPercent: tracingSampling)
        }
    }

    func validate() throws {
        if let eventLoops, !(1...256).contains(eventLoops) {
            throw ValidationError("--event-loops \(eventLoops): give 1 to 256 threads")
        }
        guard (1...86_400).contains(tcpReportingDuration) else {
            throw ValidationError("--tcp-reporting-duration \(tcpReportingDuration): give 1 to 86400 seconds (Istio's default is 15)")
        }
        guard AccessLog.Encoding(option: accessLogEncoding) != nil else {
            throw ValidationError("--access-log-encoding \(accessLogEncoding): give JSON or TEXT")
        }
        guard let exportProtocol = TracingSettings.ExportProtocol(rawValue: tracingProtocol), exportProtocol != .httpJSON else {
            throw ValidationError("--tracing-protocol \(tracingProtocol): give grpc or http/protobuf")
        }
        if let settings = tracingSettings {
            do { try settings.validate() } catch { throw ValidationError(error.reason) }
        } else if tracingSampling != 1 || tracingProtocol != "grpc" {
            throw ValidationError("--tracing-sampling and --tracing-protocol need --tracing-endpoint, the collector to send spans to")
        }
        guard ServicePort.isDNSLabel(workload) else { throw ValidationError("--workload \(workload): use a DNS label, such as reviews-v1") }
        guard ServicePort.isDNSLabel(namespace) else { throw ValidationError("--namespace \(namespace): use a DNS label, such as default") }
        _ = try Self.parseLabels(labels)
        for entry in service {
            do { _ = try ServicePort(parsing: entry) } catch { throw ValidationError(error.reason) }
        }
        for (text, option) in [(app, "--app"), (inbound, "--inbound"), (outbound, "--outbound"), (controlPlane, "--control-plane"), (admin, "--admin")] {
            _ = try HostPort.parse(text, option: option)
        }
        if let advertise { _ = try HostPort.parse(advertise, option: "--advertise") }
        if let status { _ = try HostPort.parse(status, option: "--status") }
        var tcpListeners: [(String, String)] = []
        for entry in outboundTCP {
            do { _ = try OutboundTCPListener.Mapping(parsing: entry) } catch { throw ValidationError(error.reason) }
            tcpListeners.append((String(entry.split(separator: "=", maxSplits: 1).first ?? ""), "--outbound-tcp"))
        }
        let listeners = [(inbound, "--inbound"), (outbound, "--outbound"), (admin, "--admin")] + (status.map { [($0, "--status")] } ?? []) + tcpListeners
        try HostPort.checkDistinct(listeners)
        for (text, option) in listeners {
            try HostPort.checkFree(text, option: option)
        }
        guard (identityDir == nil) != (workloadAPI == nil) else {
            throw ValidationError("give exactly one identity source: --identity-dir DIR (the agent's --out) or --workload-api SOCKET (the agent's --socket)")
        }
        // A socket not there yet is waited for (the agent may start later); something else there never becomes one.
        if let workloadAPI {
            let path = workloadAPI.hasPrefix("unix://") ? String(workloadAPI.dropFirst("unix://".count)) : workloadAPI
            var info = stat()
            if lstat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFSOCK {
                throw ValidationError("--workload-api \(workloadAPI) is not a socket: give the agent's --socket path")
            }
        }
        guard OutboundTrafficPolicy(rawValue: outboundTrafficPolicy) != nil else {
            throw ValidationError("--outbound-traffic-policy \(outboundTrafficPolicy): use ALLOW_ANY or REGISTRY_ONLY")
        }
        guard AppProtocol(rawValue: appProtocol) != nil else {
            throw ValidationError("--app-protocol \(appProtocol): use auto, http, http2, grpc-web or tcp")
        }
        guard maxBodyBytes > 0 else { throw ValidationError("--max-body-bytes must be positive") }
        guard upstreamTimeout >= 0 else { throw ValidationError("--upstream-timeout must be 0 (no limit) or a number of seconds") }
        _ = try jwksExtraRootCA.map(ExtraRootCertificates.option)
        try OptionValues.checkLogLevel(logLevel)
    }

    /// Parses `k=v,k2=v2`.
    static func parseLabels(_ text: String) throws -> [String: String] {
        var labels: [String: String] = [:]
        for pair in text.split(separator: ",") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--labels \(text): '\(pair)' is not key=value; write app=reviews,version=v1")
            }
            labels[String(parts[0])] = String(parts[1])
        }
        return labels
    }

    func run() async throws {
        if let eventLoops { NIOSingletons.groupLoopCountSuggestion = eventLoops }
        LoggingSetup.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info)
        let logger = Logger(label: "rampart.proxy")
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets = ProxyMetrics.histogramBuckets
        MetricsSystem.bootstrap(factory)

        let appAddress = try HostPort.parse(app, option: "--app")
        let inboundAddress = try HostPort.parse(inbound, option: "--inbound")
        let outboundAddress = try HostPort.parse(outbound, option: "--outbound")
        let adminAddress = try HostPort.parse(admin, option: "--admin")
        let statusAddress = try status.map { try HostPort.parse($0, option: "--status") }
        let controlPlaneAddress = try HostPort.parse(controlPlane, option: "--control-plane")
        let rootPEM = try FileOptions.readText(caRoot, option: "--ca-root", expected: "the CA's root-cert.pem")
        guard rootPEM.contains("BEGIN CERTIFICATE") else {
            throw ValidationError("--ca-root \(caRoot) cannot be read as PEM certificates: give the CA's root-cert.pem")
        }
        let workloadInfo = WorkloadInfo(
            name: workload, namespace: namespace, labels: try Self.parseLabels(labels),
            services: try service.map { try ServicePort(parsing: $0) }, appPort: appAddress.port
        )
        let identity = IdentityWatcher(source: workloadAPI.map { .workloadAPI($0) } ?? .directory(identityDir ?? ""), logger: logger)
        if identityDir != nil {
            do {
                try identity.reload()
            } catch {
                logger.warning("no workload identity yet; waiting for the node agent", metadata: ["error": "\(error.reason)"])
            }
        }
        let context = ProxyContext(
            workload: workloadInfo, appHost: appAddress.host, appPort: appAddress.port, identity: identity, config: ConfigHolder(),
            upstream: UpstreamClient(maxBodyBytes: maxBodyBytes), authenticator: RequestAuthenticator(
                fetcher: AsyncHTTPClientFetcher(extraRoots: try jwksExtraRootCA.map(ExtraRootCertificates.option))), metrics: ProxyMetrics(),
            accessLog: try AccessLog(path: accessLog, encoding: AccessLog.Encoding(option: accessLogEncoding) ?? .json), maxBodyBytes: maxBodyBytes, upstreamTimeout: .seconds(Int64(upstreamTimeout)),
            outboundPolicy: OutboundTrafficPolicy(rawValue: outboundTrafficPolicy) ?? .allowAny,
            appProtocol: AppProtocol(rawValue: appProtocol) ?? .auto, acceptHTTP10: acceptHTTP10,
            reportingInterval: .seconds(Int64(tcpReportingDuration)),
            tracing: try tracingSettings.map { try ProxyTracing(settings: $0, workload: workloadInfo, logger: logger) }, logger: logger
        )
        let tcpMappings = try outboundTCP.map { entry in
            do { return try OutboundTCPListener.Mapping(parsing: entry) } catch { throw ValidationError((error as? ProxyError)?.reason ?? "\(error)") }
        }
        let server = ProxyServer(
            context: context,
            listeners: ProxyServer.Listeners(
                inboundHost: inboundAddress.host, inboundPort: inboundAddress.port, outboundHost: outboundAddress.host, outboundPort: outboundAddress.port,
                adminHost: adminAddress.host, adminPort: adminAddress.port, advertisedInbound: advertise,
                statusHost: statusAddress?.host, statusPort: statusAddress?.port ?? 15021,
                outboundTCP: tcpMappings
            ),
            controlPlane: ConfigStream.Endpoint(host: controlPlaneAddress.host, port: controlPlaneAddress.port, rootPEM: rootPEM)
        )
        let serve: () async throws -> Void = {
            try await server.run(metricsText: { MetricsHelp.annotate(registry.emitToString()) }) { ports in
                let statusPart = statusAddress.flatMap { address in ports.status.map { " status=\(HostPort.text(address.host, $0))" } } ?? ""
                // Each outbound TCP listener as its flag reads, with the port it bound.
                let tcpPart = zip(tcpMappings, ports.outboundTCP).map { mapping, port in
                    " outbound-tcp=\(HostPort.text(mapping.host, port))=\(mapping.service):\(mapping.servicePort)"
                }.joined()
                let line = "rampart proxy ready inbound=\(HostPort.text(inboundAddress.host, ports.inbound)) outbound=\(HostPort.text(outboundAddress.host, ports.outbound)) admin=\(HostPort.text(adminAddress.host, ports.admin))\(statusPart)\(tcpPart)\n"
                StandardError.write(Data(line.utf8))
            }
        }
        if let status {
            try await HostPort.naming(["--inbound": inbound, "--outbound": outbound, "--admin": admin, "--status": status], serve)
        } else {
            try await HostPort.naming(["--inbound": inbound, "--outbound": outbound, "--admin": admin], serve)
        }
    }
}
