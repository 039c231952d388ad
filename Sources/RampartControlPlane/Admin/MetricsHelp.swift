/// `# HELP` lines for the metrics Rampart exposes, which swift-metrics cannot carry: they are
/// written into the Prometheus text before each family's `# TYPE` line, so that tools which
/// require them (`promtool check metrics`) accept the exposition.
public enum MetricsHelp {
    /// Each metric family's help text. Istio's families say what Istio's documentation says of them.
    public static let texts: [String: String] = [
        "rampart_ca_issuances_total": "Certificate requests answered by the CA, by result (issued, or the refusal's gRPC status).",
        "rampart_ca_issuance_duration_seconds": "Time to answer a certificate request, from receipt to response.",
        "rampart_ca_cert_expiry_seconds": "Seconds until the CA's signing certificate expires.",
        "rampart_ca_root_cert_expiry_seconds": "Seconds until the CA's root certificate expires.",
        "rampart_config_version": "The config store's version, raised by every apply or delete that changes it.",
        "rampart_config_resources": "Security resources in the config store, by kind.",
        "rampart_config_invalid_resources": "Stored resources left out of the policy snapshot because they do not validate.",
        "istio_requests_total": "Requests handled by the proxy, by Istio's standard labels.",
        "istio_request_duration_milliseconds": "Request durations, from the first byte received to the last byte sent.",
        "istio_request_bytes": "HTTP request body sizes.",
        "istio_response_bytes": "HTTP response body sizes.",
        "istio_tcp_sent_bytes_total": "Bytes sent to the peer over TCP connections.",
        "istio_tcp_received_bytes_total": "Bytes received from the peer over TCP connections.",
        "istio_tcp_connections_opened_total": "TCP connections opened.",
        "istio_tcp_connections_closed_total": "TCP connections closed.",
        "envoy_http_rbac_istio_dry_run_allow_shadow_allowed": "Requests the dry-run ALLOW policies would have allowed.",
        "envoy_http_rbac_istio_dry_run_allow_shadow_denied": "Requests the dry-run ALLOW policies would have denied.",
        "envoy_http_rbac_istio_dry_run_deny_shadow_allowed": "Requests the dry-run DENY policies would have allowed.",
        "envoy_http_rbac_istio_dry_run_deny_shadow_denied": "Requests the dry-run DENY policies would have denied.",
    ]

    /// The exposition with a `# HELP` line before each `# TYPE` line that lacks one.
    public static func annotate(_ exposition: String) -> String {
        var lines: [Substring] = []
        var previous: Substring = ""
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), !previous.hasPrefix("# HELP ") {
                let name = line.dropFirst("# TYPE ".count).prefix { $0 != " " }
                let text = texts[String(name)] ?? "Rampart metric \(name)."
                lines.append("# HELP \(name) \(text)")
            }
            lines.append(line)
            previous = line
        }
        return lines.joined(separator: "\n")
    }
}
