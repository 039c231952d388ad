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
}
