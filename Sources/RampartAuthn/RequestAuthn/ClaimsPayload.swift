import Foundation
import JWTKit
import RampartPolicy

/// A JWT payload read whole, so that every claim (nested ones too) reaches policy.
struct ClaimsPayload: JWTPayload {
    /// The payload's members.
    let members: [String: JSONValue]

    init(from decoder: any Decoder) throws {
        members = try decoder.singleValueContainer().decode([String: JSONValue].self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(members)
    }

    /// jwt-kit checks only the signature; ``TokenVerifier`` checks the claims so each failure has its own reason.
    func verify(using algorithm: some JWTAlgorithm) throws {}

    /// The payload as policy's claim value.
    var claims: ClaimValue { .object(members.mapValues(ClaimValue.init(json:))) }

    /// A string claim.
    func string(_ name: String) -> String? { members[name]?.stringValue }

    /// A NumericDate claim in whole seconds, its fraction dropped, as Envoy reads it; `nil` when
    /// absent or not a number from 0 to 2^64.
    func seconds(_ name: String) -> UInt64? {
        guard case .number(let value)? = members[name], value >= 0, value < 18_446_744_073_709_551_616 else { return nil }
        return UInt64(value)
    }

    /// The `aud` claim as a list: a single string or an array of strings.
    var audiences: [String] {
        switch members["aud"] {
        case .string(let audience)?: return [audience]
        case .array(let items)?: return items.compactMap(\.stringValue)
        default: return []
        }
    }
}

extension ClaimValue {
    /// Converts a decoded JSON value.
    init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .number(let value): self = .number(value)
        case .string(let value): self = .string(value)
        case .array(let items): self = .array(items.map(ClaimValue.init(json:)))
        case .object(let members): self = .object(members.mapValues(ClaimValue.init(json:)))
        }
    }
}
