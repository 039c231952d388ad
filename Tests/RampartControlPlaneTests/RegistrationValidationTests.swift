import RampartAPI
import RampartControlPlane
import RampartIdentity
import Testing

@Suite("Checking a proxy's registration")
struct RegistrationValidationTests {
    static let caller = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/shop/sa/reviews")

    static func wire(workload: String = "reviews-v1", namespace: String = "shop", services: [(String, UInt32)] = [("reviews", 9080)], inbound: String = "0.0.0.0:15006") -> Rampart_Config_V1_Registration {
        var wire = Rampart_Config_V1_Registration()
        wire.workload = workload
        wire.namespace = namespace
        wire.labels = ["app": "reviews"]
        wire.services = services.map { name, port in
            var service = Rampart_Config_V1_ServicePort()
            service.name = name
            service.port = port
            return service
        }
        wire.inboundAddress = inbound
        wire.proxyVersion = "1.0"
        return wire
    }

    static func refusal(_ wire: Rampart_Config_V1_Registration, caller: SPIFFEID = caller) -> Refusal? {
        do {
            _ = try ProxyRegistration(validating: wire, caller: caller)
            return nil
        } catch {
            return error
        }
    }

    @Test("a well-formed registration in the certificate's namespace is accepted as given")
    func accepted() throws {
        let registration = try ProxyRegistration(validating: Self.wire(services: [("reviews", 9080), ("reviews", 9080), ("admin", 1)]), caller: Self.caller)
        #expect(registration.workload == "reviews-v1")
        #expect(registration.namespace == "shop")
        #expect(registration.labels == ["app": "reviews"])
        #expect(registration.services == [.init(name: "admin", port: 1), .init(name: "reviews", port: 9080)])
        #expect(registration.inboundAddress == "0.0.0.0:15006")
        #expect(registration.proxyVersion == "1.0")
    }

    @Test("workload and namespace are required and must be DNS labels", arguments: [
        ("", "shop", "registration.workload is empty"),
        ("Reviews", "shop", "registration.workload 'Reviews' is not a DNS label"),
        ("reviews_v1", "shop", "is not a DNS label"),
        ("-reviews", "shop", "is not a DNS label"),
        ("reviews", "", "registration.namespace is empty"),
        ("reviews", "shop.prod", "registration.namespace 'shop.prod' is not a DNS label"),
    ])
    func names(workload: String, namespace: String, message: String) {
        let refusal = Self.refusal(Self.wire(workload: workload, namespace: namespace))
        #expect(refusal?.kind == .invalidArgument)
        #expect(refusal?.message.contains(message) == true, "\(refusal?.message ?? "accepted")")
    }

    @Test("a namespace other than the certificate's is refused, naming both")
    func namespaceMismatch() {
        let refusal = Self.refusal(Self.wire(namespace: "billing"))
        #expect(refusal?.kind == .permissionDenied)
        #expect(refusal?.message.contains("'billing'") == true)
        #expect(refusal?.message.contains("'shop'") == true)
    }

    @Test("a certificate without Istio's ns/sa form may register in any namespace")
    func nonIstioIdentity() throws {
        let caller = try SPIFFEID(parsing: "spiffe://cluster.local/gateway/edge")
        #expect(Self.refusal(Self.wire(namespace: "billing"), caller: caller) == nil)
    }

    @Test("each service needs a name and a port from 1 to 65535", arguments: [
        ("", UInt32(80), "registration.services[0].name is empty"),
        ("web", UInt32(0), "registration.services[0] 'web' has port 0"),
        ("web", UInt32(65536), "has port 65536"),
    ])
    func services(name: String, port: UInt32, message: String) {
        let refusal = Self.refusal(Self.wire(services: [(name, port)]))
        #expect(refusal?.kind == .invalidArgument)
        #expect(refusal?.message.contains(message) == true, "\(refusal?.message ?? "accepted")")
    }

    @Test("an inbound address must be host:port when given", arguments: ["15006", "host:", "host:70000", "::1:15006", "[::1:15006"])
    func badInbound(inbound: String) {
        let refusal = Self.refusal(Self.wire(inbound: inbound))
        #expect(refusal?.kind == .invalidArgument)
        #expect(refusal?.message.contains("registration.inbound_address") == true)
    }

    @Test("the application port is kept when it is a port, and refused past 65535")
    func appPort() throws {
        var wire = Self.wire()
        wire.appPort = 9080
        #expect(try ProxyRegistration(validating: wire, caller: Self.caller).appPort == 9080)
        #expect(try ProxyRegistration(validating: Self.wire(), caller: Self.caller).appPort == 0)
        wire.appPort = 70000
        let refusal = Self.refusal(wire)
        #expect(refusal?.kind == .invalidArgument && refusal?.message.contains("registration.app_port 70000") == true, "\(String(describing: refusal))")
    }

    @Test("inbound addresses parse with IPv4, bracketed IPv6 and bare ports")
    func inboundParsing() {
        #expect(InboundAddress(parsing: "127.0.0.1:15006") == InboundAddress(parsing: "127.0.0.1:15006"))
        #expect(InboundAddress(parsing: "[::1]:15006")?.host == "::1")
        #expect(InboundAddress(parsing: "[::]:15006")?.isUnspecified == true)
        #expect(InboundAddress(parsing: ":15006")?.isUnspecified == true)
        #expect(InboundAddress(parsing: "0.0.0.0:1")?.isUnspecified == true)
        #expect(InboundAddress(parsing: "reviews.shop:15006")?.reachable(peerHost: "10.0.0.1") == "reviews.shop:15006")
        #expect(InboundAddress.host(ofRemotePeer: "ipv4:10.0.0.7:53412") == "10.0.0.7")
        #expect(InboundAddress.host(ofRemotePeer: "ipv6:[fd00::1]:53412") == "fd00::1")
        #expect(InboundAddress.host(ofRemotePeer: "unix:/tmp/socket") == nil)
    }
}
