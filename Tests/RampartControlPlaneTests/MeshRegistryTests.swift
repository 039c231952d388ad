import Foundation
import RampartControlPlane
import Testing

/// A registration for tests.
func registration(
    _ workload: String, namespace: String = "shop", services: [ProxyRegistration.ServicePort] = [.init(name: "reviews", port: 9080)],
    inbound: String = "10.0.0.5:15006", labels: [String: String] = ["app": "reviews"]
) -> ProxyRegistration {
    ProxyRegistration(workload: workload, namespace: namespace, labels: labels, services: services, inboundAddress: inbound, proxyVersion: "test")
}

let start = Date(timeIntervalSince1970: 1_767_225_600)
let notAfter = start.addingTimeInterval(86400)

func spiffe(_ account: String, namespace: String = "shop") -> String { "spiffe://cluster.local/ns/\(namespace)/sa/\(account)" }

@Suite("Mesh registry: registrations, grace and services")
struct MeshRegistryTests {
    @Test("a workload that registers again replaces its earlier registration")
    func replacement() {
        let registry = MeshRegistry(grace: .seconds(15))
        let first = registry.register(registration("reviews-v1", inbound: "10.0.0.5:15006"), spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: "10.0.0.5", now: start)
        let other = registry.register(registration("reviews-v2"), spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: "10.0.0.6", now: start)
        let second = registry.register(registration("reviews-v1", inbound: "10.0.0.9:15006"), spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: "10.0.0.9", now: start.addingTimeInterval(1))

        #expect(first != second)
        #expect(registry.proxy(first) == nil)
        #expect(registry.proxies().map(\.stream) == [second, other])
        let endpoints = registry.services.current?.first?.endpoints.map(\.address)
        #expect(endpoints == ["10.0.0.9:15006", "10.0.0.5:15006"])

        // The replaced stream closing later does not touch the new registration.
        registry.disconnect(first, now: start.addingTimeInterval(2))
        #expect(registry.proxy(second)?.isConnected == true)
        // The same workload name in another namespace is a different workload.
        registry.register(registration("reviews-v1", namespace: "test"), spiffeID: spiffe("reviews", namespace: "test"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        #expect(registry.proxies().count == 3)
    }

    @Test("a closed stream's registration stays for the grace period, then is removed")
    func graceExpiry() {
        let registry = MeshRegistry(grace: .seconds(15))
        let id = registry.register(registration("reviews-v1"), spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        #expect(registry.expire(now: start.addingTimeInterval(3600)).isEmpty, "a connected proxy never expires")

        let closed = start.addingTimeInterval(10)
        registry.disconnect(id, now: closed)
        let kept = registry.proxy(id)
        #expect(kept?.isConnected == false)
        #expect(kept?.disconnectedAt == closed)
        #expect(registry.services.current?.first?.endpoints.count == 1, "endpoints stay during the grace period")

        #expect(registry.expire(now: closed.addingTimeInterval(14.9)).isEmpty)
        #expect(registry.proxy(id) != nil)
        let removed = registry.expire(now: closed.addingTimeInterval(15))
        #expect(removed.map(\.stream) == [id])
        #expect(registry.proxies().isEmpty)
        #expect(registry.services.current == [])
    }

    @Test("a zero grace period removes a registration as its stream closes")
    func zeroGrace() {
        let registry = MeshRegistry(grace: .zero)
        let id = registry.register(registration("reviews-v1"), spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        registry.disconnect(id, now: start.addingTimeInterval(1))
        #expect(registry.proxies().isEmpty)
    }

    @Test("an unspecified inbound host is replaced by the address the proxy connected from")
    func unspecifiedHost() {
        let registry = MeshRegistry()
        for (index, inbound) in ["0.0.0.0:15006", "[::]:15007", ":15008", "10.1.1.1:15009"].enumerated() {
            registry.register(
                registration("w\(index)", services: [.init(name: "api", port: 80)], inbound: inbound), spiffeID: spiffe("w\(index)"),
                certificateNotAfter: notAfter, peerHost: "192.168.7.\(index)", now: start
            )
        }
        registry.register(registration("v6", services: [.init(name: "api", port: 80)], inbound: "0.0.0.0:15010"), spiffeID: spiffe("v6"), certificateNotAfter: notAfter, peerHost: "fd00::7", now: start)
        let addresses = registry.services.current?.first?.endpoints.map { "\($0.workload)=\($0.address)" }
        #expect(addresses == ["v6=[fd00::7]:15010", "w0=192.168.7.0:15006", "w1=192.168.7.1:15007", "w2=192.168.7.2:15008", "w3=10.1.1.1:15009"])
    }

    @Test("an unspecified inbound host with no known peer address leaves the service without that endpoint")
    func undialable() {
        let registry = MeshRegistry()
        registry.register(registration("w", inbound: "0.0.0.0:15006"), spiffeID: spiffe("w"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        #expect(registry.services.current == [MeshService(name: "reviews", namespace: "shop", port: 9080, endpoints: [])])
    }

    @Test("services group every workload serving the same name and port in a namespace, with identity and labels")
    func grouping() {
        let registry = MeshRegistry()
        registry.register(
            registration("reviews-v1", services: [.init(name: "reviews", port: 9080), .init(name: "metrics", port: 9090)], inbound: "10.0.0.1:15006", labels: ["app": "reviews", "version": "v1"]),
            spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: nil, now: start
        )
        registry.register(
            registration("reviews-v2", services: [.init(name: "reviews", port: 9080)], inbound: "10.0.0.2:15006", labels: ["app": "reviews", "version": "v2"]),
            spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: nil, now: start
        )
        registry.register(
            registration("reviews", namespace: "test", services: [.init(name: "reviews", port: 9080)], inbound: "10.0.0.3:15006"),
            spiffeID: spiffe("reviews", namespace: "test"), certificateNotAfter: notAfter, peerHost: nil, now: start
        )
        let services = registry.services.current ?? []
        #expect(services.map { "\($0.namespace)/\($0.name):\($0.port)" } == ["shop/metrics:9090", "shop/reviews:9080", "test/reviews:9080"])
        let reviews = services[1]
        #expect(reviews.endpoints == [
            MeshService.Endpoint(address: "10.0.0.1:15006", spiffeID: spiffe("reviews"), workload: "reviews-v1", labels: ["app": "reviews", "version": "v1"]),
            MeshService.Endpoint(address: "10.0.0.2:15006", spiffeID: spiffe("reviews"), workload: "reviews-v2", labels: ["app": "reviews", "version": "v2"]),
        ])
        #expect(services[2].endpoints.map(\.spiffeID) == [spiffe("reviews", namespace: "test")])
    }

    @Test("services are published only when they change")
    func publishesChanges() async {
        let registry = MeshRegistry(grace: .seconds(5))
        var updates = registry.services.updates().makeAsyncIterator()
        #expect(await updates.next() == [])
        let id = registry.register(registration("reviews-v1"), spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        #expect(await updates.next()?.count == 1)
        registry.disconnect(id, now: start)
        registry.recordSent(id, nonce: "n1", configVersion: 3)
        registry.expire(now: start.addingTimeInterval(5))
        // Disconnecting and sending changed no service; expiry removed it.
        #expect(await updates.next() == [])
    }

    @Test("ACKs move the acked version of the nonce answered; NACKs keep it and record why")
    func acks() {
        let registry = MeshRegistry()
        let id = registry.register(registration("reviews-v1"), spiffeID: spiffe("reviews"), certificateNotAfter: notAfter, peerHost: nil, now: start)
        registry.recordSent(id, nonce: "a", configVersion: 1)
        registry.recordSent(id, nonce: "b", configVersion: 2)
        #expect(registry.proxy(id)?.sentConfigVersion == 2)
        #expect(registry.recordAck(id, nonce: "a", accepted: true, detail: "") == 1)
        #expect(registry.proxy(id)?.ackedConfigVersion == 1)
        #expect(registry.proxy(id)?.isSynced(to: 2) == false)

        #expect(registry.recordAck(id, nonce: "b", accepted: false, detail: "AuthorizationPolicy shop/x: bad rule") == 2)
        #expect(registry.proxy(id)?.ackedConfigVersion == 1)
        #expect(registry.proxy(id)?.lastNack == "AuthorizationPolicy shop/x: bad rule")

        registry.recordSent(id, nonce: "c", configVersion: 3)
        #expect(registry.recordAck(id, nonce: "unknown", accepted: true, detail: "") == nil)
        #expect(registry.recordAck(id, nonce: "c", accepted: true, detail: "") == 3)
        #expect(registry.proxy(id)?.lastNack == nil)
        #expect(registry.proxy(id)?.isSynced(to: 3) == true)
    }
}
