/// The mesh's trust domain and its aliases, and how principals in policies are read against them.
///
/// As in Istio, `cluster.local` in a policy's principal stands for the mesh's own trust domain:
/// a principal `<td>/ns/<ns>/sa/<sa>` whose trust domain is `cluster.local`, the mesh's trust
/// domain or one of its aliases matches that identity in the trust domain and in every alias.
/// Policies written for the default trust domain keep working when a mesh runs under another one
/// or migrates between two. A trust domain written as a pattern (`cl*`, `*-td1`) is read against
/// the bundle's as Istio reads it (see `expand(_:)`). Principals of any other shape, with `*` as
/// their trust domain, or in a trust domain the mesh does not know, are kept as written.
public struct TrustDomainBundle: Sendable, Hashable {
    /// The name `cluster.local`, which policies use for the local trust domain.
    public static let clusterLocal = "cluster.local"

    /// The trust domain first, then its aliases.
    public let trustDomains: [String]

    /// Creates a bundle; the trust domain defaults to `cluster.local`.
    public init(trustDomain: String = TrustDomainBundle.clusterLocal, aliases: [String] = []) {
        var domains = [trustDomain]
        for alias in aliases where !domains.contains(alias) { domains.append(alias) }
        trustDomains = domains
    }

    /// The principals a policy's principal values stand for.
    func expand(_ principals: [String]) -> [String] {
        var expanded: [String] = []
        for principal in principals {
            for value in expand(principal) where !expanded.contains(value) { expanded.append(value) }
        }
        return expanded
    }

    /// Istio's reading of one principal: a `<td>/ns/<ns>/sa/<sa>` whose trust domain is
    /// `cluster.local`, or matches one of the bundle's (either side may be a `prefix*` or `*suffix`
    /// pattern), stands for the same identity in every trust domain of the bundle. Where the
    /// principal's trust domain is a `*suffix` pattern that already covers a trust domain of the
    /// bundle, the pattern itself is kept for it; so `cl*/ns/a/sa/b` becomes the exact
    /// `cluster.local/ns/a/sa/b`, and `*bar/ns/a/sa/b` with trust domains `td1` and `foobar`
    /// becomes `td1/ns/a/sa/b` and `*bar/ns/a/sa/b`.
    private func expand(_ principal: String) -> [String] {
        let parts = principal.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] != "*" else { return [principal] }
        let domain = String(parts[0])
        guard domain == Self.clusterLocal || trustDomains.contains(where: { Self.matches(domain, $0) }) else {
            return [principal]
        }
        let rest = parts.dropFirst().joined(separator: "/")
        var expanded: [String] = []
        for candidate in trustDomains {
            let value = Self.suffixMatch(candidate, pattern: domain) ? principal : "\(candidate)/\(rest)"
            if !expanded.contains(value) { expanded.append(value) }
        }
        return expanded
    }

    /// Whether two trust domains match, either one possibly a `*`, `prefix*` or `*suffix` pattern.
    private static func matches(_ domain: String, _ other: String) -> Bool {
        domain == other || other == "*" || prefixMatch(domain, pattern: other) || prefixMatch(other, pattern: domain)
            || suffixMatch(domain, pattern: other) || suffixMatch(other, pattern: domain)
    }

    private static func prefixMatch(_ text: String, pattern: String) -> Bool {
        pattern.hasSuffix("*") && text.hasPrefix(pattern.dropLast())
    }

    private static func suffixMatch(_ text: String, pattern: String) -> Bool {
        pattern.hasPrefix("*") && text.hasSuffix(pattern.dropFirst())
    }
}
