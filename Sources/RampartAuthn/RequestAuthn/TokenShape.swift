import Foundation
import SwiftProtobuf

/// Says, in words, why a string that failed to parse as a JWT is not one, so that a refusal names
/// the part at fault instead of the parser's internals. Only called once parsing has failed.
enum TokenShape {
    /// What is wrong with `token`: its number of parts, a part that is not base64url, a header or
    /// payload that is not a JSON object.
    static func problem(_ token: String) -> String {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            return "it has \(parts.count) part\(parts.count == 1 ? "" : "s") separated by dots, where a signed JWT has three"
        }
        for (index, name) in [(0, "header"), (1, "payload")] {
            guard let data = Base64URL.decode(parts[index]) else { return "its \(name) is not base64url" }
            guard let object = try? JSONSerialization.jsonObject(with: data) else {
                return "its \(name) is not JSON Rampart can read (malformed, or nested too deeply)"
            }
            guard object is [String: Any] else { return "its \(name) is JSON but not an object" }
        }
        if Base64URL.decode(parts[2]) == nil { return "its signature is not base64url" }
        return "its header or payload does not have the members and types a JWT has"
    }
}

extension TokenShape {
    /// Envoy's JWT library's status text for a token that does not parse, checked in its order:
    /// three parts, the header's base64url and JSON and `alg`, the payload's base64url and JSON,
    /// the signature's base64url.
    static func envoyStatus(_ token: String) -> String {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return envoyBadFormat }
        guard let header = Base64URL.decode(parts[0]) else { return "Jwt header is an invalid Base64url encoded" }
        guard let headerObject = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any] else {
            return "Jwt header is an invalid JSON"
        }
        guard headerObject["alg"] is String else { return "Jwt header [alg] field is required and must be a string" }
        guard let payload = Base64URL.decode(parts[1]) else { return "Jwt payload is an invalid Base64url encoded" }
        guard (try? JSONSerialization.jsonObject(with: payload)) is [String: Any] else { return "Jwt payload is an invalid JSON" }
        if Base64URL.decode(parts[2]) == nil { return "Jwt signature is an invalid Base64url encoded" }
        return envoyBadFormat
    }

    static let envoyBadFormat = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
}

/// The JSON of a token's header and payload read as Envoy's JWT library reads it: as a
/// `google.protobuf.Struct` by protobuf's JSON parser, which refuses what Foundation's lenient
/// reader lets through, a member named twice (`"sub":"alice",…,"sub":"mallory"`) and a trailing
/// comma. A token whose JSON that parser refuses is malformed (401), so the decision and an
/// application reading the forwarded payload can never take two different `sub`s from it.
enum StrictTokenJSON {
    /// What is wrong with the JSON of the token's header or payload, or nil when both parse.
    static func problem(_ token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        for (index, name) in [(0, "header"), (1, "payload")] {
            guard let data = Base64URL.decode(parts[index]) else { return nil }
            do {
                _ = try Google_Protobuf_Struct(jsonUTF8Data: data)
            } catch {
                return "has a \(name) whose JSON is not strict (a member named twice, a trailing comma, or other syntax JSON does not allow)"
            }
        }
        return nil
    }
}

