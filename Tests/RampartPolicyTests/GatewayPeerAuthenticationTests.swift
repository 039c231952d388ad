@testable import RampartPolicy
import Foundation
import Testing

/// PeerAuthentication governs sidecars: an Istio gateway takes its TLS from its Gateway servers,
/// so plaintext from outside the mesh reaches it under a mesh-wide STRICT policy.
@Suite("gateways and PeerAuthentication")
struct GatewayPeerAuthenticationTests {
    static let strict = """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: gw, namespace: istio-system}
        spec:
          selector: {matchLabels: {istio: ingressgateway}}
          mtls: {mode: STRICT}
        """

    static func plaintext(to labels: [String: String], namespace: String = "istio-system") -> AuthzRequest {
        AuthzRequest(
            transport: .http, source: AuthzRequest.Source(ip: "203.0.113.7", mtls: false),
            destination: AuthzRequest.Destination(namespace: namespace, labels: labels, port: 8080), method: "GET",
            host: "example.com", path: "/")
    }

    @Test(
        "a gateway's pods accept plaintext whatever the mesh's mode; the PeerAuthentications are listed as not applied",
        arguments: [
            ["istio": "ingressgateway"], ["app": "istio-ingressgateway", "istio": "ingressgateway"], ["istio": "egressgateway"],
            ["gateway.networking.k8s.io/gateway-name": "gw"],
        ])
    func gatewayAcceptsPlaintext(labels: [String: String]) {
        let workload = Fixture.engine(Self.strict).snapshot.workload(namespace: "istio-system", labels: labels)
        let decision = workload.evaluate(Self.plaintext(to: labels))
        #expect(decision.decision == .allow && decision.mtlsMode == .permissive, "\(decision.reason)")
        #expect(workload.peer.skipped.map(\.policy).contains("istio-system/default"))
        #expect(workload.peer.skipped.allSatisfy { $0.reason.contains("gateway") })
    }

    @Test("a sidecar under the same policy still refuses plaintext")
    func sidecarRefusesPlaintext() {
        let decision = Fixture.engine(Self.strict).snapshot.evaluate(Self.plaintext(to: ["app": "web"], namespace: "shop"))
        #expect(decision.decision == .deny && decision.mtlsMode == .strict && decision.cause == .plaintextUnderStrict)
    }

    @Test(
        "one snapshot deciding for a gateway and a sidecar that no selector tells apart keeps each one's mode, in either order",
        arguments: [true, false])
    func gatewayAndSidecarShareNoCacheEntry(gatewayFirst: Bool) {
        // Only the mesh-wide policy: no selector reads `istio` or the Gateway API label, so the
        // destination cache must tell a gateway from a sidecar by the labels that mark a gateway.
        let snapshot = Fixture.engine(
            """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: default, namespace: istio-system}
            spec: {mtls: {mode: STRICT}}
            """
        ).snapshot
        let gateway = Self.plaintext(to: ["gateway.networking.k8s.io/gateway-name": "gw"], namespace: "shop")
        let sidecar = Self.plaintext(to: ["app": "web"], namespace: "shop")
        let ingress = Self.plaintext(to: ["istio": "ingressgateway"], namespace: "shop")
        for round in 0..<2 {
            let order = gatewayFirst ? [gateway, sidecar, ingress] : [sidecar, ingress, gateway]
            for request in order {
                let decision = snapshot.evaluate(request)
                let isGateway = WorkloadSelector.isGateway(request.destination.labels)
                #expect(
                    decision.decision == (isGateway ? .allow : .deny) && decision.mtlsMode == (isGateway ? .permissive : .strict),
                    "round \(round), \(WorkloadSelector.text(request.destination.labels)): \(decision.reason)")
            }
        }
    }

    @Test("the worked examples together: under mesh-wide STRICT, the ingress gateway serves its plaintext health check and refuses the rest for want of a token")
    func examplesTogether() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let loaded = PolicyLoader.load(paths: ["policies/mesh-strict-mtls.yaml", "policies/ingress-jwt-required.yaml"].map {
            root.appendingPathComponent($0).path
        })
        #expect(!loaded.hasErrors)
        let engine = PolicyEngine(loaded: loaded, options: SnapshotOptions(rootNamespace: "istio-system"))
        func request(_ path: String) -> AuthzRequest {
            AuthzRequest(
                transport: .http, source: AuthzRequest.Source(ip: "203.0.113.7", mtls: false),
                destination: AuthzRequest.Destination(namespace: "istio-system", labels: ["istio": "ingressgateway"], port: 8080),
                method: "GET", host: "shop.example.com", path: path)
        }
        let health = engine.snapshot.evaluate(request("/healthz"))
        #expect(health.decision == .allow && health.policy == "istio-system/require-jwt", "\(health.reason)")
        let page = engine.snapshot.evaluate(request("/cart"))
        #expect(page.decision == .deny && page.cause == .noAllowMatched, "\(page.reason)")
    }
}
