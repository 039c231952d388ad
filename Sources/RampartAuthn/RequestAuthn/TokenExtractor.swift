import Foundation
import RampartPolicy

/// Finds the tokens a request carries in the locations its workload's JWT rules read, as Envoy's
/// jwt_authn extractor does: headers (with the prefix stripped), query parameters of the path, cookies.
public enum TokenExtractor {
    /// Every distinct token in a location some rule reads, in rule and location order.
    ///
    /// A header sent more than once (`AuthzRequest.repeatedHeaders`) is read value by value, as
    /// Envoy's extractor reads it, so each of its values may hold a token of its own. A value that
    /// lacks the location's prefix holds no token. The same token in the same location is found
    /// once, with every rule that reads that location.
    public static func extract(from request: AuthzRequest, providers: [JWTProvider]) -> [FoundToken] {
        let query = queryParameters(of: request.path ?? "")
        let cookies = cookies(in: request.headers["cookie"] ?? "")
        var order: [Key] = []
        var readers: [Key: [JWTProvider]] = [:]
        for provider in providers {
            for location in provider.locations {
                for token in tokens(at: location, request: request, query: query, cookies: cookies) {
                    let key = Key(token: token, location: location)
                    if readers[key] == nil { order.append(key) }
                    if readers[key]?.contains(provider) != true { readers[key, default: []].append(provider) }
                }
            }
        }
        return order.map { FoundToken(token: $0.token, location: $0.location, providers: readers[$0] ?? []) }
    }

    /// The tokens at one location: one per value of a header, at most one in a query parameter or
    /// a cookie.
    static func tokens(
        at location: JWTProvider.TokenLocation, request: AuthzRequest, query: [String: String], cookies: [String: String]
    ) -> [String] {
        switch location {
        case .header(let name, let prefix):
            let key = name.lowercased()
            let values = request.repeatedHeaders[key] ?? request.headers[key].map { [$0] } ?? []
            return values.compactMap { headerToken($0, prefix: prefix) }
        case .queryParameter(let name):
            // The decoded value as it is, spaces included: Envoy does not trim it either. A
            // parameter or cookie that is present holds a token even when empty, which then fails
            // to parse (401), as in Envoy: only an absent token is let through anonymous.
            return query[name].map { [$0] } ?? []
        case .cookie(let name):
            return cookies[name].map { [$0.trimmingCharacters(in: .whitespaces)] } ?? []
        }
    }

    /// The token in one header value, as Envoy's extractor finds it: without a prefix the whole
    /// value (an empty one too, which then fails to parse); with one, the prefix may stand anywhere in the value, and the token is the rest of
    /// the value from the first base64url character or dot after it (a value with none after the
    /// prefix is taken whole). So `Bearer <jwt>, other` holds the token `<jwt>, other`, which does
    /// not parse. Spaces and tabs around a value are not part of it (an HTTP parser drops them).
    public static func headerToken(_ value: String, prefix: String) -> String? {
        let value = value.trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
        guard !prefix.isEmpty else { return value }
        guard let range = value.range(of: prefix) else { return nil }
        let rest = value[range.upperBound...]
        guard let start = rest.utf8.firstIndex(where: isTokenCharacter) else { return value }
        return String(rest[start...])
    }

    /// Whether a byte is a base64url character or a dot.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        Base64URL.isCharacter(byte) || byte == UInt8(ascii: ".")
    }

    /// The query parameters of a path, percent-decoded; the first of repeated names wins.
    static func queryParameters(of path: String) -> [String: String] {
        guard let mark = path.firstIndex(of: "?") else { return [:] }
        var query = path[path.index(after: mark)...]
        if let fragment = query.firstIndex(of: "#") { query = query[..<fragment] }
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            if parameters[name] == nil { parameters[name] = value }
        }
        return parameters
    }

    /// The cookies of a `cookie` header (`a=1; b="2"`), read as Envoy reads them: each pair's name
    /// loses the spaces before it and nothing else, its value is all that follows its first `=`,
    /// unquoted when double quotes wrap it and otherwise untrimmed (`jwt =x` is a cookie named
    /// `jwt `, and `jwt= x` holds ` x`). A pair without `=` is skipped; the first of repeated
    /// names wins.
    static func cookies(in header: String) -> [String: String] {
        var cookies: [String: String] = [:]
        for pair in header.split(separator: ";") {
            guard let equals = pair.firstIndex(of: "=") else { continue }
            let name = String(pair[..<equals].drop { $0 == " " })
            var value = pair[pair.index(after: equals)...]
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            if cookies[name] == nil { cookies[name] = String(value) }
        }
        return cookies
    }

    private struct Key: Hashable {
        let token: String
        let location: JWTProvider.TokenLocation
    }
}
