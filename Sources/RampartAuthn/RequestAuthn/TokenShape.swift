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

