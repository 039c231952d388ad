import Foundation
@testable import RampartProxy
import RampartPolicy
import Testing

@Suite("Config snapshots")
struct SnapshotTests {
    let workload = WorkloadInfo(name: "reviews-v1", namespace: "bookinfo", labels: ["app": "reviews"], appPort: 9080)

    @Test("a valid snapshot compiles: policies for this workload, services and revocations")
    func compiles() throws {
        let snapshot = SnapshotBuilder.snapshot(
            version: 7,
            resources: [
                SnapshotBuilder.authorizationPolicy(name: "deny-admin", namespace: "bookinfo", body: "action: DENY\nrules:\n- to:\n  - operation:\n      paths: [\"/admin\"]"),
                SnapshotBuilder.peerAuthentication(name: "default", namespace: "istio-system", mode: "STRICT"),
            ],
            services: [("ratings", "bookinfo", 9080, [("127.0.0.1:15006", "spiffe://cluster.local/ns/bookinfo/sa/ratings", "ratings-v1")])],
            revoked: ["0abc"]
        )
        let config = try ProxyConfig.compile(snapshot, workload: workload)
        #expect(config.configVersion == 7)
        #expect(config.nonce == "n7")
        #expect(config.policies.policyCount == 1)
        #expect(config.policies.peer.mode(port: 9080) == .strict)
        #expect(config.registry.resolve(host: "ratings", clientNamespace: "bookinfo")?.endpoints.first?.port == 15006)
        #expect(config.revoked.contains(serial: "ABC"))
        #expect(config.resourceCounts == ["AuthorizationPolicy": 1, "PeerAuthentication": 1])
    }

    @Test("the control plane's creation times decide between competing PeerAuthentications, not their names")
    func peerAuthenticationAge() throws {
        var snapshot = SnapshotBuilder.snapshot(resources: [
            SnapshotBuilder.peerAuthentication(name: "aa-disable", namespace: "bookinfo", mode: "DISABLE"),
            SnapshotBuilder.peerAuthentication(name: "zz-strict", namespace: "bookinfo", mode: "STRICT"),
        ])
        // Without creation times, the first by name wins.
        #expect(try ProxyConfig.compile(snapshot, workload: workload).policies.peer.mode(port: 9080) == .disable)
        snapshot.resources[0].createdAt = .init(date: Date(timeIntervalSince1970: 2_000_000_060))
        snapshot.resources[1].createdAt = .init(date: Date(timeIntervalSince1970: 2_000_000_000))
        #expect(try ProxyConfig.compile(snapshot, workload: workload).policies.peer.mode(port: 9080) == .strict)
    }

    @Test("a snapshot with a resource that does not load is refused, naming it")
    func refusesBadYAML() {
        let bad = SnapshotBuilder.authorizationPolicy(name: "broken", namespace: "bookinfo", body: "action: MAYBE")
        let snapshot = SnapshotBuilder.snapshot(resources: [bad])
        #expect {
            try ProxyConfig.compile(snapshot, workload: workload)
        } throws: { error in
            guard let error = error as? ProxyError else { return false }
            return error.code == .badSnapshot && error.reason.contains("AuthorizationPolicy/bookinfo/broken")
        }
    }

    @Test("a resource whose YAML names another resource is refused")
    func refusesMismatchedName() {
        var resource = SnapshotBuilder.authorizationPolicy(name: "a", namespace: "bookinfo", body: "{}")
        resource.name = "b"
        #expect(throws: ProxyError.self) { try ProxyConfig.compile(SnapshotBuilder.snapshot(resources: [resource]), workload: workload) }
    }

    @Test("an endpoint address that is not host:port is refused")
    func refusesBadEndpoint() {
        let snapshot = SnapshotBuilder.snapshot(services: [("ratings", "bookinfo", 9080, [("nowhere", "spiffe://cluster.local/ns/bookinfo/sa/ratings", "r")])])
        #expect(throws: ProxyError.self) { try ProxyConfig.compile(snapshot, workload: workload) }
    }
}
