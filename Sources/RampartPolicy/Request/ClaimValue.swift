import Foundation

/// A JSON value inside a JWT payload.
public enum ClaimValue: Sendable, Hashable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([ClaimValue])
    case object([String: ClaimValue])
    case null

    /// Converts a value produced by Yams or JSONSerialization.
    public init(any value: Any?) {
        switch value {
        case let string as String: self = .string(string)
        case let bool as Bool: self = .bool(bool)
        case let int as Int: self = .number(Double(int))
        case let double as Double: self = .number(double)
        case let array as [Any]: self = .array(array.map { ClaimValue(any: $0) })
        case let object as [String: Any]: self = .object(object.mapValues { ClaimValue(any: $0) })
        default: self = .null
        }
    }

    /// The member at `key` of an object.
    public subscript(key: String) -> ClaimValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The value at a path of object keys.
    public func value(at path: [String]) -> ClaimValue? {
        var current: ClaimValue? = self
        for key in path { current = current?[key] }
        return current
    }

    /// The string forms Istio matches against: a string, or the strings of a list.
    public var matchableStrings: [String] {
        switch self {
        case .string(let string): return [string]
        case .array(let items):
            return items.compactMap { if case .string(let string) = $0 { return string } else { return nil } }
        default: return []
        }
    }

    /// A JSON-compatible representation.
    public var jsonObject: Any {
        switch self {
        case .string(let string): return string
        case .number(let number): return number == number.rounded() && abs(number) < 1e15 ? Int(number) : number
        case .bool(let bool): return bool
        case .array(let items): return items.map(\.jsonObject)
        case .object(let members): return members.mapValues(\.jsonObject)
        case .null: return NSNull()
        }
    }

    /// The header value Envoy writes for a claim: strings as-is, numbers and booleans as text, a
    /// list or an object as its compact JSON in base64 (keys sorted), as Envoy's JWT filter writes
    /// non-primitive claims since version 1.29; `nil` (no header) for an empty string, as Envoy
    /// writes none, for a string holding CR, LF or NUL, which no header value may carry, and for
    /// `null`.
    /// JSON text with the characters protobuf's JSON printer writes as `\\uXXXX` escaped so: `<`,
    /// `>`, and the invisible and line-breaking code points it escapes for JavaScript's sake (soft
    /// hyphen, Arabic number signs, zero-width and bidirectional marks, U+2028 to U+202E, the byte
    /// order mark, ...). They can only stand inside strings, where the escape means the same.
    static func escapedAsProtobuf(_ json: String) -> String {
        func escaped(_ value: UInt32) -> Bool {
            switch value {
            case 0x3C, 0x3E, 0xAD, 0x600...0x603, 0x6DD, 0x70F, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2064,
                0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFB:
                return true
            default: return false
            }
        }
        guard json.unicodeScalars.contains(where: { escaped($0.value) }) else { return json }
        var out = ""
        for scalar in json.unicodeScalars {
            if escaped(scalar.value) {
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    public var headerValue: String? {
        switch self {
        case .string(let string):
            guard !string.isEmpty, !string.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else { return nil }
            return string
        case .number(let number):
            // As Envoy writes claims to headers: a whole non-negative number as an integer, any other
            // number as C's `%f` (six decimals).
            if number >= 0, number < 18_446_744_073_709_551_616, number == number.rounded() { return String(UInt64(number)) }
            return number.isFinite ? String(format: "%f", number) : nil
        case .bool(let bool): return bool ? "true" : "false"
        case .array, .object:
            guard
                let data = try? JSONSerialization.data(
                    withJSONObject: jsonObject, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
            else { return nil }
            return Data(Self.escapedAsProtobuf(String(decoding: data, as: UTF8.self)).utf8).base64EncodedString()
        case .null: return nil
        }
    }
}
