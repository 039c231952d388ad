import Foundation
import Yams

/// Why a request file could not be read.
public struct RequestDecodingError: Error, Sendable, CustomStringConvertible {
    /// The field at fault, such as `destination.port`.
    public let field: String
    /// What was wrong and what was expected.
    public let reason: String

    public var description: String { field.isEmpty ? reason : "\(field): \(reason)" }
}

extension AuthzRequest {
    /// Decodes a request from JSON or YAML text in the corpus schema.
    public init(text: String) throws(RequestDecodingError) {
        let object: Any?
        do {
            object = try Yams.load(yaml: text)
        } catch {
            throw RequestDecodingError(field: "", reason: "the request is neither JSON nor YAML: \(error)")
        }
        try self.init(object: object)
    }

    /// Decodes a request from a JSON or YAML file.
    public init(file: String) throws(RequestDecodingError) {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw RequestDecodingError(field: "", reason: "cannot read request file \(file)")
        }
        try self.init(text: text)
    }

    /// Decodes a request from a parsed JSON/YAML object.
    public init(object: Any?) throws(RequestDecodingError) {
        guard let root = object as? [String: Any] else {
            throw RequestDecodingError(field: "", reason: "expected a mapping with protocol, source, destination, ...")
        }
        let protocolText = try Self.string(root["protocol"], "protocol") ?? "HTTP"
        guard let transport = TransportProtocol(rawValue: protocolText.uppercased()) else {
            throw RequestDecodingError(field: "protocol", reason: "expected HTTP or TCP, found \(protocolText)")
        }
        let sourceObject = try Self.map(root["source"], "source") ?? [:]
        let source = Source(
            principal: try Self.string(sourceObject["principal"], "source.principal"),
            namespace: try Self.string(sourceObject["namespace"], "source.namespace"),
            ip: try Self.string(sourceObject["ip"], "source.ip"),
            remoteIP: try Self.string(sourceObject["remote_ip"], "source.remote_ip"),
            mtls: sourceObject["mtls"] as? Bool)
        let destinationObject = try Self.map(root["destination"], "destination") ?? [:]
        var labels: [String: String] = [:]
        for (key, value) in try Self.map(destinationObject["labels"], "destination.labels") ?? [:] {
            labels[key] = "\(value)"
        }
        let destination = Destination(
            namespace: try Self.string(destinationObject["namespace"], "destination.namespace") ?? "default",
            labels: labels, port: try Self.int(destinationObject["port"], "destination.port"),
            ip: try Self.string(destinationObject["ip"], "destination.ip"))
        var headers: [String: String] = [:]
        for (key, value) in try Self.map(root["headers"], "headers") ?? [:] {
            headers[key] = try Self.headerValue(value, "headers.\(key)")
        }
        var extAuthz: ExtAuthzAnswer?
        if let answer = try Self.string(root["ext_authz"], "ext_authz") {
            guard let parsed = ExtAuthzAnswer(rawValue: answer.lowercased()) else {
                throw RequestDecodingError(field: "ext_authz", reason: "expected allow or deny, found \(answer)")
            }
            extAuthz = parsed
        }
        self.init(
            transport: transport, source: source, destination: destination,
            method: try Self.string(root["method"], "method"), host: try Self.string(root["host"], "host"),
            path: try Self.string(root["path"], "path"), headers: headers, extAuthz: extAuthz,
            sni: try Self.string(root["sni"], "sni"), jwt: try Self.jwt(root["jwt"]))
    }

    private static func jwt(_ value: Any?) throws(RequestDecodingError) -> JWTOutcome? {
        guard let object = try map(value, "jwt") else { return nil }
        let present = object["present"] as? Bool ?? false
        guard present else { return .absent }
        let claims = object["claims"].map { ClaimValue(any: $0) }
        var principal = try string(object["request_principal"], "jwt.request_principal")
        if principal == nil, case .string(let iss)? = claims?["iss"], case .string(let sub)? = claims?["sub"] {
            principal = "\(iss)/\(sub)"
        }
        return JWTOutcome(
            present: true, valid: object["valid"] as? Bool ?? true, claims: claims, requestPrincipal: principal,
            location: try string(object["location"], "jwt.location"), raw: try string(object["raw"], "jwt.raw"),
            failure: try string(object["reason"], "jwt.reason"))
    }

    private static func string(_ value: Any?, _ field: String) throws(RequestDecodingError) -> String? {
        switch value {
        case nil, is NSNull: return nil
        case let string as String: return string
        case let int as Int: return String(int)
        default: throw RequestDecodingError(field: field, reason: "expected a string")
        }
    }

    /// A header's value: a scalar as written, or a list of them for a header sent more than once,
    /// joined with `,` as Envoy joins repeated headers before matching them.
    private static func headerValue(_ value: Any, _ field: String) throws(RequestDecodingError) -> String {
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
            return values.joined(separator: ",")
        }
        guard let text = scalar(value) else {
            throw RequestDecodingError(
                field: field, reason: "expected a string, or a list of strings for a header sent more than once")
        }
        return text
    }

    private static func int(_ value: Any?, _ field: String) throws(RequestDecodingError) -> Int? {
        switch value {
        case nil, is NSNull: return nil
        case let int as Int: return int
        case let string as String:
            guard let int = Int(string) else { throw RequestDecodingError(field: field, reason: "expected a number") }
            return int
        default: throw RequestDecodingError(field: field, reason: "expected a number")
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
