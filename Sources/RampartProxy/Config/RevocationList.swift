import Foundation

/// The unexpired certificates the CA has revoked, by serial.
public struct RevocationList: Sendable, Hashable {
    /// Normalized serials.
    public let serials: Set<String>

    /// Creates a list from serials in any of the CA's spellings (`0A:1b`, `0x0a1b`, `a1b`).
    public init(serials: some Sequence<String>) {
        self.serials = Set(serials.map(Self.normalize))
    }

    /// True when the serial is revoked.
    public func contains(serial: String) -> Bool { serials.contains(serial) || serials.contains(Self.normalize(serial)) }

    /// Lower-case hex without separators, `0x`, or leading zeros.
    public static func normalize(_ serial: String) -> String {
        var text = serial.lowercased().replacingOccurrences(of: ":", with: "")
        if text.hasPrefix("0x") { text.removeFirst(2) }
        while text.hasPrefix("0") && text.count > 1 { text.removeFirst() }
        return text
    }
}
