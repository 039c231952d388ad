import Foundation
import RampartIdentity
import Yams

/// Why a request file could not be read.
public struct RequestDecodingError: Error, Sendable, CustomStringConvertible {
    /// The field at fault, such as `destination.port`.
    public let field: String
    /// What was wrong and what was expected.
    public let reason: String
    /// The line of the file the field is on, when known.
    public var line: Int?

    public init(field: String, reason: String, line: Int? = nil) {
        self.field = field
        self.reason = reason
        self.line = line
    }

    public var description: String { DiagnosticText.escaped(field.isEmpty ? reason : "\(field): \(reason)") }

    /// The error with the line of its field in `text` (the text it was decoded from), if the field is there.
    func located(in text: String) -> RequestDecodingError {
        guard line == nil, !field.isEmpty, let found = PlainYAML.line(of: field, in: text) else { return self }
        return RequestDecodingError(field: field, reason: reason, line: found)
    }

    /// `file:line` (or `file`) for messages that name where the fault is.
    public func place(_ file: String) -> String { line.map { "\(file):\($0)" } ?? file }
}

extension AuthzRequest {
    /// Decodes a request from JSON or YAML text in the corpus schema.
    public init(text: String) throws(RequestDecodingError) {
        // Header and label values are text: `1.10` is not the number 1.1, nor `on` a boolean.
        try self.init(
            object: try PlainYAML.parse(text) { path in
                path.hasPrefix("headers.") || path.hasPrefix("destination.labels.")
            })
    }

    /// Decodes a request from a JSON or YAML file.
    public init(file: String) throws(RequestDecodingError) {
        let text = file == PolicyLoader.standardInput ? PolicyLoader.standardInputText() : PolicyLoader.text(ofFile: file)
        guard let text else {
            if file == PolicyLoader.standardInput {
                throw RequestDecodingError(field: "", reason: "standard input holds no UTF-8 request")
            }
            let problem = PolicyLoader.readProblem(file, what: "request file")
            throw RequestDecodingError(
                field: "", reason: "\(problem.message)\(problem.line > 0 ? " (line \(problem.line))" : ""): \(problem.fix)")
        }
        do {
            try self.init(text: text)
        } catch {
            throw error.located(in: text)
        }
    }

    /// The fields of each object of the schema, for refusing misspelt ones.
    private static let rootFields = [
        "protocol", "source", "destination", "method", "host", "path", "headers", "ext_authz", "sni", "jwt",
    ]
    private static let sourceFields = ["principal", "namespace", "ip", "remote_ip", "mtls"]
    private static let destinationFields = ["namespace", "labels", "port", "ip", "principal"]
    private static let jwtFields = ["present", "valid", "claims", "request_principal", "location", "raw", "reason", "note"]

    /// Decodes a request from a parsed JSON/YAML object.
    public init(object: Any?) throws(RequestDecodingError) {
        guard object != nil else {
            throw RequestDecodingError(
                field: "", reason: "the request is empty: give at least destination {namespace, labels} and the request's fields")
        }
        guard let root = object as? [String: Any] else {
            throw RequestDecodingError(field: "", reason: "expected a mapping with protocol, source, destination, ...")
        }
        try Self.checkFields(root, Self.rootFields, "")
        let protocolText = try Self.string(root["protocol"], "protocol") ?? "HTTP"
        guard let transport = TransportProtocol(rawValue: protocolText.uppercased()) else {
            throw RequestDecodingError(field: "protocol", reason: "expected HTTP or TCP, found \(protocolText)")
        }
        let sourceObject = try Self.map(root["source"], "source") ?? [:]
        try Self.checkFields(sourceObject, Self.sourceFields, "source")
        let source = Source(
            principal: try Self.principal(sourceObject["principal"]),
            namespace: try Self.string(sourceObject["namespace"], "source.namespace"),
            ip: try Self.address(sourceObject["ip"], "source.ip"),
            remoteIP: try Self.address(sourceObject["remote_ip"], "source.remote_ip"),
            mtls: try Self.bool(sourceObject["mtls"], "source.mtls"))
        // Which workload's policies apply is the one thing a request must say.
        guard let destinationObject = try Self.map(root["destination"], "destination") else {
            throw RequestDecodingError(
                field: "destination",
                reason: root.isEmpty
                    ? "the request is empty: give at least destination {namespace, labels} and the request's fields"
                    : "missing: give the workload receiving the request, e.g. destination: {namespace: shop, labels: {app: cart}, port: 8080}")
        }
        try Self.checkFields(destinationObject, Self.destinationFields, "destination")
        var labels: [String: String] = [:]
        for (key, value) in try Self.map(destinationObject["labels"], "destination.labels") ?? [:] {
            guard let text = value as? String else {
                throw RequestDecodingError(
                    field: "destination.labels.\(key)", reason: "expected a string, found \(Self.describe(value)): a label's value is text")
            }
            labels[key] = text
        }
        let port = try Self.int(destinationObject["port"], "destination.port")
        if let port, !(1...65535).contains(port) {
            throw RequestDecodingError(field: "destination.port", reason: "expected a port from 1 to 65535, found \(port)")
        }
        let namespace = try Self.string(destinationObject["namespace"], "destination.namespace") ?? "default"
        guard DNSName.isLabel(namespace) else {
            throw RequestDecodingError(
                field: "destination.namespace",
                reason: "\"\(namespace)\" is not a namespace name: use lower-case letters, digits and '-', at most 63, such as shop")
        }
        let destination = Destination(
            namespace: namespace,
            labels: labels, port: port, ip: try Self.address(destinationObject["ip"], "destination.ip"),
            principal: try Self.principal(destinationObject["principal"], "destination.principal"))
        var headers: [String: String] = [:]
        var repeatedHeaders: [String: [String]] = [:]
        var spelled: [String: String] = [:]
        for (key, value) in try Self.map(root["headers"], "headers") ?? [:] {
            // Header names are case-insensitive: two spellings of one name would leave which
            // value counts to chance.
            let name = key.lowercased()
            if let other = spelled.updateValue(key, forKey: name) {
                let (first, second) = other < key ? (other, key) : (key, other)
                throw RequestDecodingError(
                    field: "headers",
                    reason: "\(first) and \(second) name the same header (header names are case-insensitive): give it once, with a list of its values if it is sent more than once")
            }
            let values = try Self.headerValues(value, "headers.\(key)")
            if name == "cookie" {
                // Cookies sent in several fields are one, joined with "; " as Envoy joins them.
                headers[name] = values.joined(separator: "; ")
                continue
            }
            headers[name] = values.joined(separator: ",")
            if values.count > 1 { repeatedHeaders[name] = values }
        }
        var extAuthz: ExtAuthzAnswer?
        if let answer = try Self.string(root["ext_authz"], "ext_authz") {
            guard let parsed = ExtAuthzAnswer(rawValue: answer.lowercased()) else {
                throw RequestDecodingError(field: "ext_authz", reason: "expected allow or deny, found \(answer)")
            }
            extAuthz = parsed
        }
        // An absolute-form path is read as the proxy reads it: its path, its authority the host.
        var host = try Self.string(root["host"], "host")
        var path = try Self.string(root["path"], "path")
        if let target = path, let (authority, origin) = RequestTarget.absoluteForm(target) {
            guard !authority.isEmpty else {
                throw RequestDecodingError(field: "path", reason: "\(target) names no host (or user information), which the proxy answers 400")
            }
            host = authority
            path = origin
        }
        // A sidecar takes the client's address from x-forwarded-for when the file does not say it.
        var client = source
        if transport == .http, source.remoteIP == nil, let forwarded = Self.forwardedClient(headers["x-forwarded-for"]) {
            client = Source(
                principal: source.principal, namespace: source.namespace, ip: source.ip, remoteIP: forwarded, mtls: source.mtls)
        }
        self.init(
            transport: transport, source: client, destination: destination,
            method: try Self.string(root["method"], "method"), host: host,
            path: path, headers: headers, extAuthz: extAuthz,
            sni: try Self.string(root["sni"], "sni"), jwt: try Self.jwt(root["jwt"]), repeatedHeaders: repeatedHeaders)
    }

    private static func jwt(_ value: Any?) throws(RequestDecodingError) -> JWTOutcome? {
        guard let object = try map(value, "jwt") else { return nil }
        try checkFields(object, jwtFields, "jwt")
        let present = try bool(object["present"], "jwt.present") ?? false
        let valid = try bool(object["valid"], "jwt.valid") ?? true
        // Every field is checked, even when the token is absent and they are not used.
        let claims = try map(object["claims"], "jwt.claims").map { ClaimValue(any: $0) }
        var principal = try string(object["request_principal"], "jwt.request_principal")
        let location = try string(object["location"], "jwt.location")
        let raw = try string(object["raw"], "jwt.raw")
        let failure = try string(object["reason"], "jwt.reason")
        _ = try string(object["note"], "jwt.note")
        guard present else { return .absent }
        // Istio's request principal is the token's iss/sub: a stated one must agree with the claims.
        if case .string(let iss)? = claims?["iss"], case .string(let sub)? = claims?["sub"] {
            let derived = "\(iss)/\(sub)"
            if let stated = principal, stated != derived {
                throw RequestDecodingError(
                    field: "jwt.request_principal",
                    reason: "\"\(stated)\" is not the claims' iss/sub \"\(derived)\", which is what Istio takes as the request principal: correct it, or leave it out to use the claims")
            }
            principal = derived
        }
        return JWTOutcome(
            present: true, valid: valid, claims: claims, requestPrincipal: principal, location: location, raw: raw,
            failure: failure)
    }

    /// Refuses a field the schema does not have, naming the ones it has.
    private static func checkFields(_ object: [String: Any], _ known: [String], _ path: String)
        throws(RequestDecodingError)
    {
        for key in object.keys.sorted() where !known.contains(key) {
            let field = path.isEmpty ? key : "\(path).\(key)"
            throw RequestDecodingError(
                field: field,
                reason: "unknown field; \(path.isEmpty ? "a request" : path) has \(known.joined(separator: ", "))")
        }
    }

    /// A `true` or `false`; quoted text and numbers are refused, so that `"false"` cannot read as true.
    private static func bool(_ value: Any?, _ field: String) throws(RequestDecodingError) -> Bool? {
        switch value {
        case nil, is NSNull: return nil
        case let flag as Bool: return flag
        default: throw RequestDecodingError(field: field, reason: "expected true or false, found \(describe(value))")
        }
    }

    /// An IP address, checked to parse.
    private static func address(_ value: Any?, _ field: String) throws(RequestDecodingError) -> String? {
        guard let text = try string(value, field) else { return nil }
        guard IPAddress(text) != nil else {
            throw RequestDecodingError(field: field, reason: "expected an IPv4 or IPv6 address, found \(text)")
        }
        return text
    }

    /// A value as the error messages quote it.
    /// A value read from the file, said as its kind (a mapping, a list) or, for a scalar, itself.
    private static func describe(_ value: Any?) -> String {
        switch value {
        case let string as String: return "\"\(DiagnosticText.escaped(string))\""
        case is [String: Any]: return "a mapping"
        case is [Any]: return "a list"
        case is NSNull: return "null"
        case let value?: return DiagnosticText.escaped("\(value)")
        case nil: return "nothing"
        }
    }

    /// The peer's SPIFFE ID as Istio's principals spell it, without `spiffe://` (which is dropped
    /// when given); an empty one is refused, since "no principal" is said by leaving it out.
    private static func principal(_ value: Any?, _ field: String = "source.principal") throws(RequestDecodingError) -> String? {
        guard var principal = try string(value, field) else { return nil }
        if principal.lowercased().hasPrefix("spiffe://") { principal.removeFirst("spiffe://".count) }
        guard !principal.isEmpty else {
            throw RequestDecodingError(
                field: field,
                reason: field == "source.principal"
                    ? "is empty: leave it out for a plaintext request, or give the peer's SPIFFE ID, such as cluster.local/ns/shop/sa/cart"
                    : "is empty: leave it out, or give the workload's SPIFFE ID, such as cluster.local/ns/shop/sa/cart")
        }
        return principal
    }

    private static func string(_ value: Any?, _ field: String) throws(RequestDecodingError) -> String? {
        switch value {
        case nil, is NSNull: return nil
        case let string as String: return string
        default: throw RequestDecodingError(field: field, reason: "expected a string, found \(describe(value))")
        }
    }

    /// A header's value, or its values when the request file lists them (a header sent more than
    /// once): the caller joins them with `,`, as Envoy joins repeated headers before matching them
    /// (cookies with `; `).
    private static func headerValues(_ value: Any, _ field: String) throws(RequestDecodingError) -> [String] {
        func scalar(_ value: Any) -> String? {
            switch value {
            case is NSNull, is [Any], is [String: Any]: return nil
            case let string as String: return string
            default: return "\(value)"
            }
        }
        if let list = value as? [Any] {
            var values: [String] = []
            for element in list {
                guard let text = scalar(element) else {
                    throw RequestDecodingError(
                        field: field, reason: "expected a list of strings (one per time the header is sent)")
                }
                values.append(text)
            }
            return values
        }
        guard let text = scalar(value) else {
            throw RequestDecodingError(
                field: field, reason: "expected a string, or a list of strings for a header sent more than once")
        }
        return [text]
    }

    private static func int(_ value: Any?, _ field: String) throws(RequestDecodingError) -> Int? {
        switch value {
        case nil, is NSNull: return nil
        case let int as Int: return int
        case let string as String:
            guard let int = Int(string) else {
                throw RequestDecodingError(field: field, reason: "expected a number, found \(describe(value))")
            }
            return int
        default: throw RequestDecodingError(field: field, reason: "expected a number, found \(describe(value))")
        }
    }

    private static func map(_ value: Any?, _ field: String) throws(RequestDecodingError) -> [String: Any]? {
        switch value {
        case nil, is NSNull: return nil
        case let map as [String: Any]: return map
        default: throw RequestDecodingError(field: field, reason: "expected a mapping")
        }
    }
}
