/// The mesh's trust domain and its aliases, and how principals in policies are read against them.
///
/// As in Istio, `cluster.local` in a policy's principal stands for the mesh's own trust domain:
/// a principal `<td>/ns/<ns>/sa/<sa>` whose trust domain is `cluster.local`, the mesh's trust
/// domain or one of its aliases matches that identity in the trust domain and in every alias.
/// Policies written for the default trust domain keep working when a mesh runs under another one
/// or migrates between two. Principals of any other shape, with `*` as their trust domain, or in a
/// trust domain the mesh does not know, are kept as written.
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
        if trustDomains == [Self.clusterLocal] { return principals }
        var expanded: [String] = []
        for principal in principals {
            for value in expand(principal) where !expanded.contains(value) { expanded.append(value) }
        }
        return expanded
    }

    private func expand(_ principal: String) -> [String] {
        let parts = principal.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] != "*" else { return [principal] }
        let domain = String(parts[0])
        guard domain == Self.clusterLocal || trustDomains.contains(domain) else { return [principal] }
        let rest = parts.dropFirst().joined(separator: "/")
        return trustDomains.map { candidate in
            // A domain pattern with a leading * that already covers this trust domain stays as written.
            if domain.hasPrefix("*") && candidate.hasSuffix(domain.dropFirst()) { return principal }
            return "\(candidate)/\(rest)"
        }
    }
}
