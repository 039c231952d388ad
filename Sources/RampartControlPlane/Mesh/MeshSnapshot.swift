import RampartAPI
import SwiftProtobuf
import RampartPolicy
import RampartStore

/// Everything a config stream sends, at one moment: the config state, the services and the
/// revoked certificates. Turned into one proxy's wire `Snapshot` by ``wire(namespace:rootNamespace:proxySpiffeID:nonce:)``.
public struct MeshSnapshot: Sendable {
    /// The compiled config and the stored records it accepted.
    public let config: ConfigState
    /// Every service in the mesh.
    public let services: [MeshService]
    /// Unexpired revoked certificates, ordered by serial.
    public let revoked: [RevokedCertificate]

    /// Creates a snapshot of the three sources.
    public init(config: ConfigState, services: [MeshService], revoked: [RevokedCertificate]) {
        self.config = config
        self.services = services
        self.revoked = revoked
    }

    /// Whether a proxy already holding `other` would receive the same thing: the same config
    /// version, services and revoked set.
    public func hasSameContent(as other: MeshSnapshot) -> Bool {
        config.version == other.config.version && services == other.services && revoked == other.revoked
    }

    /// The accepted security resources of `namespace` and of the root namespace, in the store's order.
    public func resources(namespace: String, rootNamespace: String) -> [ConfigResourceRecord] {
        config.accepted.filter { record in
            (record.namespace == namespace || record.namespace == rootNamespace) && ResourceKind(rawValue: record.kind) != nil
        }
    }

    /// Whether an endpoint's PeerAuthentication resolves to DISABLE for its application port
    /// (mesh → namespace → workload → port): its proxy then takes plaintext, and clients send it
    /// plaintext, as Istio's auto mTLS sends it to such an endpoint.
    func takesPlaintext(_ endpoint: MeshService.Endpoint, namespace: String) -> Bool {
        let port = endpoint.appPort > 0 ? endpoint.appPort : nil
        let destination = AuthzRequest.Destination(namespace: namespace, labels: endpoint.labels, port: port)
        return config.snapshot.peerModes(for: destination).mode(port: port) == .disable
    }

    /// The wire snapshot for a proxy in `namespace` whose certificate names `proxySpiffeID`.
    public func wire(namespace: String, rootNamespace: String, proxySpiffeID: String, nonce: String) -> Rampart_Config_V1_Snapshot {
        var snapshot = Rampart_Config_V1_Snapshot()
        snapshot.nonce = nonce
        snapshot.configVersion = config.version
        snapshot.rootNamespace = rootNamespace
        snapshot.proxySpiffeID = proxySpiffeID
        snapshot.resources = resources(namespace: namespace, rootNamespace: rootNamespace).map { record in
            var resource = Rampart_Config_V1_Resource()
            resource.kind = record.kind
            resource.namespace = record.namespace
            resource.name = record.name
            resource.yaml = record.yaml
            resource.createdAt = Google_Protobuf_Timestamp(date: record.createdAt)
            return resource
        }
        snapshot.services = services.map { service in
            var wire = Rampart_Config_V1_Service()
            wire.name = service.name
            wire.namespace = service.namespace
            wire.port = UInt32(clamping: service.port)
            wire.endpoints = service.endpoints.map { endpoint in
                var wire = Rampart_Config_V1_Endpoint()
                wire.address = endpoint.address
                wire.spiffeID = endpoint.spiffeID
                wire.workload = endpoint.workload
                wire.labels = endpoint.labels
                wire.plaintext = takesPlaintext(endpoint, namespace: service.namespace)
                return wire
            }
            return wire
        }
        snapshot.revoked = revoked.map { certificate in
            var wire = Rampart_Config_V1_RevokedCertificate()
            wire.serial = certificate.serial
            wire.spiffeID = certificate.spiffeID
            wire.notAfter = Int64(certificate.notAfter.timeIntervalSince1970.rounded(.up))
            return wire
        }
        return snapshot
    }
}
