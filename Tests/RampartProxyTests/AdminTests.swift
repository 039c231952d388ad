import NIOCore
@testable import RampartProxy
import Testing

@Suite("the admin port")
struct AdminTests {
    @Test("/quitquitquit is taken only from the proxy's own host", arguments: [
        ("127.0.0.1", true), ("127.8.9.1", true), ("::1", true), ("::ffff:127.0.0.1", true),
        ("10.0.0.1", false), ("::ffff:10.0.0.1", false), ("2001:db8::1", false), ("128.0.0.1", false),
    ])
    func loopbackOnly(address: String, allowed: Bool) throws {
        let socket = try SocketAddress(ipAddress: address, port: 40000)
        #expect(ProxyAdmin.isLoopback(socket) == allowed)
    }

    @Test("a peer without an IP address (a Unix socket) is not taken for the proxy's host")
    func noAddress() throws {
        #expect(!ProxyAdmin.isLoopback(nil))
        #expect(!ProxyAdmin.isLoopback(try SocketAddress(unixDomainSocketPath: "/tmp/admin.sock")))
    }
}
