import Testing

@testable import RampartControlPlane

/// The addresses the CA's serving certificate names beside `localhost` and 127.0.0.1, so that a
/// client dialling the listen address verifies it.
@Suite("serving certificate addresses")
struct ServingCertificateTests {
    @Test(
        "an IPv4 or IPv6 listen address is named; :: is named as ::1; names, 127.0.0.1 and 0.0.0.0 add nothing",
        arguments: [
            ("10.1.2.3", [[10, 1, 2, 3]]),
            ("127.0.0.1", []),
            ("0.0.0.0", []),
            ("localhost", []),
            ("ca.example.com", []),
            ("::1", [[UInt8](repeating: 0, count: 15) + [1]]),
            ("[::1]", [[UInt8](repeating: 0, count: 15) + [1]]),
            ("::", [[UInt8](repeating: 0, count: 15) + [1]]),
            ("fd00::5", [[0xfd, 0] + [UInt8](repeating: 0, count: 13) + [5]]),
        ] as [(String, [[UInt8]])])
    func addresses(host: String, expected: [[UInt8]]) {
        #expect(ServingCertificate.listenAddresses(host) == expected)
    }
}
