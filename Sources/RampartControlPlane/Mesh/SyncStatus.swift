import Foundation

/// What `GET /debug/syncz` answers and `rampart status` shows: the config version now served and
/// where every known proxy stands against it.
public struct SyncStatus: Codable, Sendable, Equatable {
    /// One proxy's sync state.
    public struct Proxy: Codable, Sendable, Equatable {
        /// One service the proxy registered.
        public struct Service: Codable, Sendable, Equatable {
            /// The service's short name.
            public let name: String
            /// The port clients use.
            public let port: Int
        }

        /// The workload's name.
        public let workload: String
        /// The workload's namespace.
        public let namespace: String
        /// The SPIFFE ID on the proxy's certificate.
        public let spiffeID: String
        /// The workload's labels.
        public let labels: [String: String]
        /// The services it serves.
        public let services: [Service]
        /// Its inbound address, as registered.
        public let inboundAddress: String
        /// The proxy's software version.
        public let proxyVersion: String
        /// When the proxy's certificate expires (RFC 3339).
        public let certificateNotAfter: String
        /// The config version of the last snapshot sent, if any.
        public let sentConfigVersion: Int64?
        /// The config version of the last snapshot accepted, if any.
        public let ackedConfigVersion: Int64?
        /// Why the proxy refused a snapshot, until it accepts a later one.
        public let lastNack: String?
        /// When the stream registered (RFC 3339).
        public let connectedAt: String
        /// When the stream closed (RFC 3339); nil while connected.
        public let disconnectedAt: String?
        /// `connected` or `disconnected`.
        public let state: String
        /// Whether the proxy accepted the config version now served.
        public let synced: Bool

        /// `workload.namespace`.
        public var displayName: String { "\(workload).\(namespace)" }

        enum CodingKeys: String, CodingKey {
            case workload, namespace, labels, services, state, synced
            case spiffeID = "spiffe_id"
            case inboundAddress = "inbound_address"
            case proxyVersion = "proxy_version"
            case certificateNotAfter = "certificate_not_after"
            case sentConfigVersion = "sent_config_version"
            case ackedConfigVersion = "acked_config_version"
            case lastNack = "last_nack"
            case connectedAt = "connected_at"
            case disconnectedAt = "disconnected_at"
        }

        /// Writes every key, with `null` for absent values, so readers see the full shape.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(workload, forKey: .workload)
            try container.encode(namespace, forKey: .namespace)
            try container.encode(spiffeID, forKey: .spiffeID)
            try container.encode(labels, forKey: .labels)
            try container.encode(services, forKey: .services)
            try container.encode(inboundAddress, forKey: .inboundAddress)
            try container.encode(proxyVersion, forKey: .proxyVersion)
            try container.encode(certificateNotAfter, forKey: .certificateNotAfter)
            try container.encode(sentConfigVersion, forKey: .sentConfigVersion)
            try container.encode(ackedConfigVersion, forKey: .ackedConfigVersion)
            try container.encode(lastNack, forKey: .lastNack)
            try container.encode(connectedAt, forKey: .connectedAt)
            try container.encode(disconnectedAt, forKey: .disconnectedAt)
            try container.encode(state, forKey: .state)
            try container.encode(synced, forKey: .synced)
        }
    }

    /// The config version the control plane serves now; nil before the store was first read.
    public let configVersion: Int64?
    /// Every proxy connected or in its grace period, ordered by namespace then workload.
    public let proxies: [Proxy]

    enum CodingKeys: String, CodingKey {
        case configVersion = "config_version"
        case proxies
    }

    /// Writes every key, with `null` for an absent config version.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(configVersion, forKey: .configVersion)
        try container.encode(proxies, forKey: .proxies)
    }

    /// The status of `proxies` against `configVersion`.
    public init(configVersion: Int64?, proxies: [ProxyRecord]) {
        self.configVersion = configVersion
        self.proxies = proxies.map { record in
            let registration = record.registration
            return Proxy(
                workload: registration.workload, namespace: registration.namespace, spiffeID: record.spiffeID, labels: registration.labels,
                services: registration.services.map { Proxy.Service(name: $0.name, port: $0.port) },
                inboundAddress: registration.inboundAddress, proxyVersion: registration.proxyVersion,
                certificateNotAfter: Self.rfc3339(record.certificateNotAfter),
                sentConfigVersion: record.sentConfigVersion, ackedConfigVersion: record.ackedConfigVersion, lastNack: record.lastNack,
                connectedAt: Self.rfc3339(record.connectedAt), disconnectedAt: record.disconnectedAt.map(Self.rfc3339),
                state: record.isConnected ? "connected" : "disconnected", synced: record.isSynced(to: configVersion)
            )
        }
    }

    /// The JSON document, keys sorted, pretty-printed.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// A date as RFC 3339 in UTC, to the second.
    public static func rfc3339(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
