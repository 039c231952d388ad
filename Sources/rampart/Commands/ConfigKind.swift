import ArgumentParser
import RampartPolicy

/// The names kubectl accepts for Istio's security kinds: the kind, its lowercase singular and
/// plural, the short name from Istio's CRDs (`ap`, `pa`, `ra`), each optionally with `.security.istio.io`.
enum ConfigKind {
    static let group = "security.istio.io"

    /// The lowercase plural, as in the CRD name `authorizationpolicies.security.istio.io`.
    static func plural(_ kind: ResourceKind) -> String {
        switch kind {
        case .authorizationPolicy: return "authorizationpolicies"
        case .peerAuthentication: return "peerauthentications"
        case .requestAuthentication: return "requestauthentications"
        }
    }

    /// The short name Istio's CRD declares.
    static func shortName(_ kind: ResourceKind) -> String {
        switch kind {
        case .authorizationPolicy: return "ap"
        case .peerAuthentication: return "pa"
        case .requestAuthentication: return "ra"
        }
    }

    /// `authorizationpolicy.security.istio.io`, the form kubectl prints before a resource name.
    static func qualified(_ kind: ResourceKind) -> String { "\(kind.rawValue.lowercased()).\(group)" }

    /// Reads a kind as typed on the command line, in any of kubectl's spellings.
    static func parse(_ text: String) throws -> ResourceKind {
        var name = text.lowercased()
        if name.hasSuffix(".\(group)") { name.removeLast(group.count + 1) }
        for kind in ResourceKind.allCases where [kind.rawValue.lowercased(), plural(kind), shortName(kind)].contains(name) {
            return kind
        }
        let known = ResourceKind.allCases.map { "\($0.rawValue) (\(plural($0)), \(shortName($0)))" }.joined(separator: ", ")
        throw ValidationError("unknown kind \"\(text)\": the config store holds \(known)")
    }
}
