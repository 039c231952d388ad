import Foundation

/// Base64url (RFC 4648 §5), as JWTs and JWKs write it: `-` and `_` for `+` and `/`, padding optional.
enum Base64URL {
    /// The bytes `text` encodes, or `nil` when it holds a character outside the base64url
    /// alphabet (and `=` padding) or does not decode.
    static func decode(_ text: some StringProtocol) -> Data? {
        guard text.utf8.allSatisfy(isAlphabet) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            .replacingOccurrences(of: "=", with: "")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }

    private static func isAlphabet(_ byte: UInt8) -> Bool {
        isCharacter(byte) || byte == UInt8(ascii: "=")
    }

    /// Whether a byte is one of the 64 characters of the base64url alphabet (padding excluded).
    static func isCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default: return false
        }
    }
}
