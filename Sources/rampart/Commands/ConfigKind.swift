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
        // kind.version.group, as kubectl takes it: authorizationpolicies.v1.security.istio.io.
        for version in ["v1", "v1beta1"] where name.hasSuffix(".\(version)") { name.removeLast(version.count + 1) }
        for kind in ResourceKind.allCases where [kind.rawValue.lowercased(), plural(kind), shortName(kind)].contains(name) {
            return kind
        }
        let known = ResourceKind.allCases.map { "\($0.rawValue) (\(plural($0)), \(shortName($0)))" }.joined(separator: ", ")
        throw ValidationError("unknown kind \"\(text)\": the config store holds \(known)")
    }

    /// The categories Istio's CRDs declare, which kubectl reads as every kind in them.
    static let categories = ["istio-io", "security-istio-io"]

    /// The kinds a name on the command line stands for: every kind for a category, else one.
    static func kinds(_ text: String) throws -> [ResourceKind] {
        categories.contains(text.lowercased()) ? ResourceKind.allCases : [try parse(text)]
    }

    /// What `get` or `delete` names on its command line, in kubectl's forms: `KIND`,
    /// `KIND,KIND`, `KIND NAME...` or `KIND/NAME...` (as `get -o name` prints them).
    struct Selection: Equatable {
        /// The kinds named, in order, each once.
        let kinds: [ResourceKind]
        /// The resources named, or `nil` for every resource of `kinds`.
        let names: [Named]?

        struct Named: Equatable {
            let kind: ResourceKind
            let name: String
        }

        /// The names given for `kind`.
        func names(of kind: ResourceKind) -> [String]? {
            names.map { $0.filter { $0.kind == kind }.map(\.name) }
        }
    }

    /// Reads the arguments of `get` or `delete`.
    static func selection(_ arguments: [String]) throws -> Selection {
        guard let first = arguments.first else {
            throw ValidationError("say what to list: KIND, KIND,KIND, KIND NAME... or KIND/NAME...")
        }
        if arguments.contains(where: { $0.contains("/") }) {
            guard arguments.allSatisfy({ $0.contains("/") }) else {
                throw ValidationError(
                    "give every resource as KIND/NAME, or the kind once and then names (KIND NAME...), not both")
            }
            let named = try arguments.map { argument -> Selection.Named in
                let parts = argument.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[1].isEmpty, !parts[1].contains("/") else {
                    throw ValidationError("\"\(argument)\" is not KIND/NAME, such as ap/allow-nothing")
                }
                return Selection.Named(kind: try parse(String(parts[0])), name: String(parts[1]))
            }
            return Selection(kinds: unique(named.map(\.kind)), names: named)
        }
        let kinds = unique(try first.split(separator: ",", omittingEmptySubsequences: false).flatMap { try Self.kinds(String($0)) })
        let names = Array(arguments.dropFirst())
        guard !names.isEmpty else { return Selection(kinds: kinds, names: nil) }
        // As kubectl reads `ap,pa NAME`: each name under each kind.
        return Selection(kinds: kinds, names: kinds.flatMap { kind in names.map { Selection.Named(kind: kind, name: $0) } })
    }

    private static func unique(_ kinds: [ResourceKind]) -> [ResourceKind] {
        var seen: Set<ResourceKind> = []
        return kinds.filter { seen.insert($0).inserted }
    }
}
