/// Snapshot-wide integer ids of the exact principals, namespaces and methods that rules are indexed by.
///
/// Interned once when the snapshot is compiled and shared by every workload program, so a request's
/// principal and namespace are each looked up once per decision in one table that stays warm,
/// instead of in a cold per-workload table.
final class IdentityIDs: Sendable {
    let principals: [String: Int32]
    let namespaces: [String: Int32]
    let methods: [String: Int32]
    /// The same maps, probed cheaply on the per-request path.
    let principalTable: InternTable
    let namespaceTable: InternTable
    let methodTable: InternTable
    /// By principal id: the id of the namespace segment of the principal (`NamespacePattern.segment`),
    /// `-1` when it has none or no rule names it, or `ambiguousNamespace` when `/ns/` occurs in it
    /// more than once. A request whose principal is interned gets its namespace id without a scan.
    let principalNamespaces: [Int32]

    /// The namespace id of a principal in which `/ns/` occurs more than once, so that several
    /// namespace values may match it and the namespace index cannot be used.
    static let ambiguousNamespace: Int32 = -3

    /// Interns the exact identities and methods the rules of `policies` require.
    init(policies: [CompiledPolicy]) {
        var principals: [String: Int32] = [:]
        var namespaces: [String: Int32] = [:]
        var methods: [String: Int32] = [:]
        for policy in policies {
            for rule in policy.rules {
                for value in WorkloadProgramBuilder.methods(of: rule) ?? [] where methods[value] == nil {
                    methods[value] = Int32(methods.count)
                }
                guard let identity = WorkloadProgramBuilder.identity(of: rule) else { continue }
                for value in identity.principals where principals[value] == nil {
                    principals[value] = Int32(principals.count)
                }
                for value in identity.namespaces where namespaces[value] == nil {
                    namespaces[value] = Int32(namespaces.count)
                }
            }
        }
        self.principals = principals
        self.namespaces = namespaces
        self.methods = methods
        var principalNamespaces = [Int32](repeating: -1, count: principals.count)
        for (principal, id) in principals {
            switch NamespacePattern.segment(of: principal) {
            case (.one, let namespace?): principalNamespaces[Int(id)] = namespaces[namespace] ?? -1
            case (.ambiguous, _): principalNamespaces[Int(id)] = Self.ambiguousNamespace
            default: break
            }
        }
        self.principalNamespaces = principalNamespaces
        principalTable = InternTable(principals)
        namespaceTable = InternTable(namespaces)
        methodTable = InternTable(methods)
    }
}
