/// A request attribute a policy field or `when` key reads.
enum Attribute: Sendable, Hashable {
    case sourcePrincipal
    case sourceNamespace
    case serviceAccount
    /// The trust domain of the peer's SPIFFE ID: its principal up to the first `/`.
    case trustDomain
    case requestPrincipal
    case sourceIP
    case remoteIP
    case host
    case method
    case path
    case port
    case destinationIP
    case sni
    case header(String)
    /// `request.experimental.inline.headers[name]`: matches one element of the header's
    /// comma-separated value list.
    case inlineHeader(String)
    case claim([String])
    case audiences
    case presenter
    /// `experimental.envoy.filters.*`: filter metadata Rampart does not produce, so it never matches.
    case filterMetadata(String)

    /// The `when` key that reads the attribute, for explanations.
    var key: String {
        switch self {
        case .sourcePrincipal: return "source.principal"
        case .sourceNamespace: return "source.namespace"
        case .serviceAccount: return "source.serviceAccount"
        case .trustDomain: return "source.trustDomain"
        case .requestPrincipal: return "request.auth.principal"
        case .sourceIP: return "source.ip"
        case .remoteIP: return "remote.ip"
        case .host: return "request.host"
        case .method: return "request.method"
        case .path: return "request.path"
        case .port: return "destination.port"
        case .destinationIP: return "destination.ip"
        case .sni: return "connection.sni"
        case .header(let name): return "request.headers[\(name)]"
        case .inlineHeader(let name): return "request.experimental.inline.headers[\(name)]"
        case .claim(let path): return "request.auth.claims[\(path.joined(separator: "]["))]"
        case .audiences: return "request.auth.audiences"
        case .presenter: return "request.auth.presenter"
        case .filterMetadata(let key): return key
        }
    }

    /// Whether the attribute exists only for HTTP (dropped or fatal on TCP, by action).
    var isHTTPOnly: Bool {
        switch self {
        case .requestPrincipal, .host, .method, .path, .header, .inlineHeader, .claim, .audiences, .presenter: return true
        default: return false
        }
    }

    /// The attribute a source/operation field reads.
    static func forField(_ name: String) -> Attribute? {
        switch name {
        case "principals", "notPrincipals": return .sourcePrincipal
        case "requestPrincipals", "notRequestPrincipals": return .requestPrincipal
        case "namespaces", "notNamespaces": return .sourceNamespace
        case "ipBlocks", "notIpBlocks": return .sourceIP
        case "remoteIpBlocks", "notRemoteIpBlocks": return .remoteIP
        case "serviceAccounts", "notServiceAccounts": return .serviceAccount
        case "trustDomains", "notTrustDomains": return .trustDomain
        case "hosts", "notHosts": return .host
        case "ports", "notPorts": return .port
        case "methods", "notMethods": return .method
        case "paths", "notPaths": return .path
        default: return nil
        }
    }

    /// The attribute a `when` key reads, or `nil` for an unknown key.
    static func forConditionKey(_ key: String) -> Attribute? {
        switch key {
        case "source.ip": return .sourceIP
        case "remote.ip": return .remoteIP
        case "source.namespace": return .sourceNamespace
        case "source.principal": return .sourcePrincipal
        case "source.serviceAccount": return .serviceAccount
        case "source.trustDomain": return .trustDomain
        case "request.auth.principal": return .requestPrincipal
        case "request.auth.audiences": return .audiences
        case "request.auth.presenter": return .presenter
        case "destination.ip": return .destinationIP
        case "destination.port": return .port
        case "connection.sni": return .sni
        default: break
        }
        if key.hasPrefix("experimental.envoy.filters."), bracketed(key) != nil { return .filterMetadata(key) }
        if key.hasPrefix("request.headers["), let names = bracketed(key), names.count == 1 {
            return .header(names[0].lowercased())
        }
        if key.hasPrefix("request.experimental.inline.headers["), let names = bracketed(key), names.count == 1 {
            return .inlineHeader(names[0].lowercased())
        }
        if key.hasPrefix("request.auth.claims["), let names = bracketed(key) { return .claim(names) }
        return nil
    }

    /// The names inside `a[b][c]`, or `nil` when the key is not of that form or a name is empty.
    static func bracketed(_ key: String) -> [String]? {
        guard let open = key.firstIndex(of: "["), open > key.startIndex, key.hasSuffix("]") else { return nil }
        let inner = key[key.index(after: open)..<key.index(before: key.endIndex)]
        let names = inner.components(separatedBy: "][")
        guard !names.contains(where: { $0.isEmpty || $0.contains("[") || $0.contains("]") }) else { return nil }
        return names
    }
}
