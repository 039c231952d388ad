@testable import RampartPolicy
import Testing

/// Header lists read as Envoy's `StringUtil` reads them: elements split at commas, trimmed of
/// Envoy's whitespace, compared without regard to ASCII case.
@Suite("header token lists")
struct HeaderTokensTests {
    @Test("a list holds a token whatever its case and the whitespace around it", arguments: [
        ("upgrade", true), ("Upgrade", true), ("keep-alive, Upgrade", true), ("keep-alive,\tUPGRADE\t", true),
        ("close,upgrade,", true), (" , upgrade", true), ("keep-alive", false), ("upgrades", false), ("up grade", false),
        ("", false), (",,", false), ("upgrade;x=1", false), ("\u{00A0}upgrade", false), ("upgrädе", false),
    ])
    func upgradeToken(value: String, holds: Bool) {
        #expect(HeaderTokens.list(value, contains: "upgrade") == holds)
    }

    @Test("parameters after ; are left out only when asked", arguments: [
        ("trailers", true), ("gzip, trailers;q=0.5", true), ("TRAILERS ; q=1", true), ("deflate;q=1, gzip", false), ("trailersx", false),
    ])
    func parameters(value: String, holds: Bool) {
        #expect(HeaderTokens.list(value, contains: "trailers", ignoringParameters: true) == holds)
        #expect(HeaderTokens.list(value, contains: "trailers") == (holds && !value.contains(";")))
    }

    @Test("trimming takes Envoy's whitespace from both ends and nothing else")
    func trimming() {
        #expect(HeaderTokens.trimmed(" \t10.0.0.1\r\n") == "10.0.0.1")
        #expect(HeaderTokens.trimmed("\u{0B}\u{0C}a b\u{0C}") == "a b")
        #expect(HeaderTokens.trimmed("   ") == "")
        #expect(HeaderTokens.trimmed("\u{00A0}x") == "\u{00A0}x")
        // What the connection manager reads through them.
        #expect(ConnectionManagerHeaders.Circumstances(connection: "Keep-Alive, Upgrade", upgrade: "websocket", forwardedFor: " 10.1.2.3 ").upgrade)
        #expect(ConnectionManagerHeaders.Circumstances(connection: "Keep-Alive, Upgrade", upgrade: "websocket", forwardedFor: " 10.1.2.3 ").internalRequest)
        #expect(!ConnectionManagerHeaders.Circumstances(connection: "upgrade", upgrade: nil, forwardedFor: "10.1.2.3, 192.168.0.1").upgrade)
        #expect(!ConnectionManagerHeaders.Circumstances(connection: "upgrade", upgrade: nil, forwardedFor: "10.1.2.3, 192.168.0.1").internalRequest)
        #expect(AuthzRequest.forwardedClient("1.2.3.4,\t10.0.0.9 ") == "10.0.0.9")
    }
}
