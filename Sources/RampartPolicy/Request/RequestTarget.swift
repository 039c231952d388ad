/// HTTP request targets as Envoy's codec reads them (RFC 9112 §3.2).
public enum RequestTarget {
    /// The authority and origin-form path (with its query) of an absolute-form target
    /// (`http://host/path?q`), as Envoy makes `:authority` and `:path` of it; `nil` for a target
    /// that is not in absolute form. A target with an empty authority or user information has
    /// `authority` empty: it is refused.
    public static func absoluteForm(_ target: String) -> (authority: String, path: String)? {
        guard !target.hasPrefix("/"), target != "*" else { return nil }
        let lowered = target.lowercased()
        guard let scheme = ["http://", "https://"].first(where: { lowered.hasPrefix($0) }) else { return nil }
        let rest = target.dropFirst(scheme.count)
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = String(rest[..<end])
        var path = String(rest[end...])
        if !path.hasPrefix("/") { path = "/" + path }
        return (authority.contains("@") ? "" : authority, path)
    }

    /// The target without the query parameter `name` (compared percent-decoded, every occurrence),
    /// the other parameters kept as sent; without a `?` when none is left. Envoy's JWT filter
    /// removes a token read from a parameter this way when the rule does not forward it.
    public static func removingQueryParameter(_ name: String, from target: String) -> String {
        guard let mark = target.firstIndex(of: "?") else { return target }
        let path = target[..<mark]
        var query = target[target.index(after: mark)...]
        var fragment: Substring = ""
        if let hash = query.firstIndex(of: "#") {
            fragment = query[hash...]
            query = query[..<hash]
        }
        let kept = query.split(separator: "&", omittingEmptySubsequences: false).filter { pair in
            let key = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            return (String(key).removingPercentEncoding ?? String(key)) != name
        }
        let rest = kept.joined(separator: "&")
        return String(path) + (rest.isEmpty ? "" : "?" + rest) + fragment
    }
}
