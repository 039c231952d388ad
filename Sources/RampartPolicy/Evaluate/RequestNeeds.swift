/// The costlier request attributes some policy of a workload reads; preparing a request computes
/// only these, since an attribute no check reads cannot change a decision.
struct RequestNeeds: OptionSet, Sendable, Hashable {
    let rawValue: UInt8

    static let serviceAccount = RequestNeeds(rawValue: 1 << 0)
    static let sourceIP = RequestNeeds(rawValue: 1 << 1)
    static let remoteIP = RequestNeeds(rawValue: 1 << 2)
    static let destinationIP = RequestNeeds(rawValue: 1 << 3)
    /// Some check reads a request header (`request.headers[...]`).
    static let headers = RequestNeeds(rawValue: 1 << 4)
    static let trustDomain = RequestNeeds(rawValue: 1 << 5)
    static let all: RequestNeeds = [.serviceAccount, .sourceIP, .remoteIP, .destinationIP, .headers, .trustDomain]

    /// What the checks of `policies` read.
    init(policies: [CompiledPolicy]) {
        var needs: RequestNeeds = []
        for policy in policies {
            for rule in policy.rules {
                for check in rule.froms.joined() { needs.formUnion(Self(check.attribute)) }
                for check in rule.tos.joined() { needs.formUnion(Self(check.attribute)) }
                for check in rule.whens { needs.formUnion(Self(check.attribute)) }
            }
        }
        self = needs
    }

    init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    private init(_ attribute: Attribute) {
        switch attribute {
        case .serviceAccount: self = .serviceAccount
        case .sourceIP: self = .sourceIP
        case .remoteIP: self = .remoteIP
        case .destinationIP: self = .destinationIP
        case .header, .inlineHeader: self = .headers
        case .trustDomain: self = .trustDomain
        default: self = []
        }
    }
}
