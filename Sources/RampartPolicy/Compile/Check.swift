/// How the values of one field are compared with an attribute.
enum ValueMatcher: Sendable, Hashable {
    case strings([StringMatcher])
    case paths([PathMatcher])
    case ips([IPBlock])
    case ports([Int])
    /// Request principals, each a pattern on the token's issuer and one on its subject.
    case requestPrincipals([RequestPrincipalPattern])
    case never
}

/// A path pattern: an Istio string pattern or a `{*}`/`{**}` template.
enum PathMatcher: Sendable, Hashable {
    case string(StringMatcher)
    case template(PathTemplate)

    init(_ pattern: String) {
        self = PathTemplate.isTemplate(pattern) ? .template(PathTemplate(pattern)) : .string(StringMatcher(pattern))
    }

    @inline(__always)
    func matches(_ path: String) -> Bool {
        switch self {
        case .string(let matcher): return matcher.matches(path)
        case .template(let template): return template.matches(path)
        }
    }
}

/// One compiled field or condition: an attribute, its matcher and whether the result is negated.
struct Check: Sendable, Hashable {
    let attribute: Attribute
    let matcher: ValueMatcher
    let negated: Bool
    /// The field path, for explanations (`from[0].source.principals`).
    let field: String
    /// The values as compared (trust domain aliases added), for explanations.
    let values: [String]

    init(attribute: Attribute, values: [String], negated: Bool, field: String) {
        self.attribute = attribute
        self.negated = negated
        self.field = field
        self.values = values
        switch attribute {
        case .sourceIP, .remoteIP, .destinationIP:
            matcher = .ips(values.compactMap(IPBlock.init))
        case .port:
            matcher = .ports(values.compactMap { Int($0) })
        case .path:
            matcher = .paths(values.map(PathMatcher.init))
        case .host:
            matcher = .strings(values.map { StringMatcher($0, ignoreCase: true, wildcard: .present) })
        case .method, .header, .inlineHeader:
            matcher = .strings(values.map { StringMatcher($0, wildcard: .present) })
        case .requestPrincipal:
            matcher = .requestPrincipals(values.map(RequestPrincipalPattern.init))
        case .filterMetadata:
            matcher = .never
        case .sourcePrincipal:
            matcher = .strings(values.map(StringMatcher.principal))
        case .serviceAccount:
            matcher = .strings(values.map(StringMatcher.serviceAccount))
        default:
            matcher = .strings(values.map { StringMatcher($0) })
        }
    }

    /// Whether the request satisfies this check.
    @inline(__always)
    func passes(_ request: PreparedRequest) -> Bool {
        matches(request) != negated
    }

    private func matches(_ request: PreparedRequest) -> Bool {
        switch matcher {
        case .never:
            return false
        case .ips(let blocks):
            let address: IPAddress?
            switch attribute {
            case .sourceIP: address = request.sourceIP
            case .remoteIP: address = request.remoteIP
            default: address = request.destinationIP
            }
            guard let address else { return false }
            return blocks.contains { $0.contains(address) }
        case .ports(let ports):
            guard let port = request.port else { return false }
            return ports.contains(port)
        case .paths(let matchers):
            guard let path = request.path else { return false }
            return matchers.contains { $0.matches(path) }
        case .requestPrincipals(let patterns):
            guard
                let token = RequestPrincipalPattern.parts(
                    principal: request.requestPrincipal, issuerLength: request.requestIssuerLength)
            else { return false }
            return patterns.contains { $0.matches(issuer: token.issuer, subject: token.subject) }
        case .strings(let matchers):
            switch attribute {
            case .claim(let path):
                return anyMatch(matchers, request.claims?.value(at: path))
            case .audiences:
                return anyMatch(matchers, request.claims?["aud"])
            case .presenter:
                return anyMatch(matchers, request.claims?["azp"])
            case .sourceNamespace:
                // Istio reads the namespace out of the peer's SPIFFE ID with a regex (see NamespacePattern).
                guard let principal = request.principal else { return false }
                return matchers.contains { NamespacePattern($0).matches(principal: principal) }
            case .serviceAccount:
                if let principal = request.principal, matchers.contains(where: { $0.matches(accountOf: principal) }) { return true }
                if let account = request.serviceAccount { return matchers.contains { $0.matches(account) } }
                // A principal of another shape is matched with Istio's regex (see ServiceAccountPattern).
                guard let principal = request.principal else { return false }
                return matchers.contains { matcher in
                    (matcher.form == .exact || matcher.form == .dottedExact)
                        && ServiceAccountPattern(matcher.literal)?.matches(principal: principal) == true
                }
            case .inlineHeader(let name):
                guard let value = request.header(name) else { return false }
                return matchers.contains { Self.listed($0, in: value) }
            default:
                guard let value = request.string(for: attribute) else { return false }
                return matchers.contains { $0.matches(value) }
            }
        }
    }

    private func anyMatch(_ matchers: [StringMatcher], _ value: ClaimValue?) -> Bool {
        switch value {
        case .string(let string)?: return matchers.contains { $0.matches(string) }
        case .array(let items)?:
            for case .string(let string) in items where matchers.contains(where: { $0.matches(string) }) {
                return true
            }
            return false
        default: return false
        }
    }
}

extension Check {
    /// Why the check failed, in words: the field, what the request had and the values it was
    /// compared with, for `explain` (`to[0].operation.paths: "/api/items" does not match ["/admin*"]`).
    func failureText(_ request: PreparedRequest) -> String { failure(request).message }

    /// Why the check failed: the field, the `when` key, what the request had (or why it had nothing),
    /// the values it was compared with, and all of that in words.
    func failure(_ request: PreparedRequest) -> ExplainTrace.FieldFailure {
        let listed = values.isEmpty ? "" : " [" + values.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        let isCondition = field.contains(".when[")
        let key = isCondition ? " (\(attribute.key))" : ""
        let (value, missing) = requestValue(request)
        // A value read out of the peer's identity names the identity it came from.
        var origin = ""
        if let principal = request.principal, value != nil, value != principal {
            switch attribute {
            case .sourceNamespace, .serviceAccount, .trustDomain: origin = " (from peer identity \(principal))"
            default: break
            }
        }
        let message: String
        if let value, negated {
            message = "\(field)\(key): \"\(value)\"\(origin) matches\(listed), which the rule excludes"
        } else if case .filterMetadata = attribute {
            message = "\(field)\(key): filter metadata Rampart does not have never matches"
        } else if let value {
            message = "\(field)\(key): \"\(value)\"\(origin) does not match\(listed)"
        } else {
            message = "\(field)\(key): the request has \(missing), so it does not match\(listed)"
        }
        return ExplainTrace.FieldFailure(
            field: field, key: isCondition ? attribute.key : nil, value: value, missing: value == nil ? missing : nil,
            values: values, negated: negated, message: message + regexNote)
    }

    /// For principals whose suffix Istio reads as a regular expression, the expressions they are.
    private var regexNote: String {
        guard case .strings(let matchers) = matcher else { return "" }
        let expressions = matchers.filter { $0.form == .regexSuffix }.map { "spiffe://.*\($0.literal)" }
        guard !expressions.isEmpty else { return "" }
        return " (read as Istio reads them, as the regular expression\(expressions.count == 1 ? "" : "s") "
            + expressions.joined(separator: ", ") + ")"
    }

    /// What the request had for this check's attribute, or why it had nothing.
    private func requestValue(_ request: PreparedRequest) -> (value: String?, missing: String) {
        switch attribute {
        case .sourceIP: return (request.sourceIP?.description, "no source address")
        case .remoteIP: return (request.remoteIP?.description, "no remote address")
        case .destinationIP: return (request.destinationIP?.description, "no destination address")
        case .port: return (request.port.map(String.init), "no port")
        case .path: return (request.path, "no path")
        case .sourcePrincipal:
            return (request.principal, "no peer identity (plaintext, or hidden by the mTLS mode)")
        case .sourceNamespace:
            // The namespace Istio reads out of the identity (its /ns/ segment), else the identity.
            guard let principal = request.principal else { return (nil, "no peer identity (plaintext, or hidden by the mTLS mode)") }
            return (NamespacePattern.segment(of: principal).1 ?? principal, "")
        case .trustDomain:
            guard let principal = request.principal else { return (nil, "no peer identity (plaintext, or hidden by the mTLS mode)") }
            return (String(PreparedRequest.trustDomain(of: principal)), "")
        case .serviceAccount:
            guard let principal = request.principal else { return (nil, "no peer identity (plaintext, or hidden by the mTLS mode)") }
            return (request.serviceAccount ?? principal, "")
        case .requestPrincipal: return (request.requestPrincipal, "no request principal (no verified JWT)")
        case .claim(let path): return (request.claims?.value(at: path).map(Self.text), "no claim \(path.joined(separator: "."))")
        case .audiences: return (request.claims?["aud"].map(Self.text), "no aud claim")
        case .presenter: return (request.claims?["azp"].map(Self.text), "no azp claim")
        case .inlineHeader(let name): return (request.header(name), "no \(name) header")
        case .header(let name): return (request.header(name), "no \(name) header")
        case .filterMetadata: return (nil, "no filter metadata")
        default: return (request.string(for: attribute), "no value")
        }
    }

    private static func text(_ value: ClaimValue) -> String {
        switch value {
        case .string(let string): return string
        case .array(let items): return items.map(text).joined(separator: ", ")
        default: return "\(value.jsonObject)"
        }
    }

    /// Whether `matcher` is found in the comma-separated list `value` as Istio's inline header
    /// regex finds it (`^v$|^v,.*|.*,v,.*|.*,v$`): an exact value spans whole elements, a prefix
    /// starts where an element starts, a suffix ends where one ends; elements are not trimmed.
    static func listed(_ matcher: StringMatcher, in value: String) -> Bool {
        let bytes = Array(value.utf8), literal = Array(matcher.literal.utf8), comma = UInt8(ascii: ",")
        guard bytes.contains(comma) else { return matcher.matches(value) }
        let starts = [0] + bytes.indices.filter { bytes[$0] == comma }.map { $0 + 1 }
        let ends = bytes.indices.filter { bytes[$0] == comma } + [bytes.count]
        switch matcher.form {
        case .exact:
            return starts.contains { start in
                let end = start + literal.count
                return end <= bytes.count && (end == bytes.count || bytes[end] == comma) && Array(bytes[start..<end]) == literal
            }
        case .prefix:
            return starts.contains { bytes[$0...].starts(with: literal) }
        case .suffix:
            return ends.contains { end in end >= literal.count && Array(bytes[(end - literal.count)..<end]) == literal }
        default:
            return matcher.matches(value)
        }
    }
}
