import Foundation
import Yams

/// Parses YAML or JSON into plain values (`[String: Any]`, `[Any]`, `String`, `Int`, `Double`, `Bool`),
/// for input files that are not Istio resources: requests, workload lists, JWKS environments.
public enum PlainYAML {
    /// Parses the first document of the text.
    public static func parse(_ text: String) throws(RequestDecodingError) -> Any? {
        do {
            return try Yams.load(yaml: text)
        } catch {
            throw RequestDecodingError(field: "", reason: "not valid YAML or JSON: \(error)")
        }
    }

    /// Reads and parses a file.
    public static func parse(file: String) throws(RequestDecodingError) -> Any? {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw RequestDecodingError(field: "", reason: "cannot read \(file)")
        }
        return try parse(text)
    }
}

extension Workload {
    /// Reads a workload list: `[{namespace: ns1, labels: {app: b}}, ...]`.
    public static func list(from value: Any?) throws(RequestDecodingError) -> [Workload] {
        guard let items = value as? [[String: Any]] else {
            throw RequestDecodingError(field: "", reason: "expected a list of {namespace, labels} mappings")
        }
        return items.map { item in
            let labels = (item["labels"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
            return Workload(namespace: item["namespace"] as? String ?? "default", labels: labels)
        }
    }
}

extension JWKSEnvironment {
    /// Reads `{unreachable: [uri, ...], latency_ms: {uri: 500}}`; an empty document states nothing.
    /// Anything else is refused, naming the field, so that a misspelt environment cannot pass
    /// for one in which every key source answers.
    public static func from(_ value: Any?) throws(RequestDecodingError) -> JWKSEnvironment {
        if value == nil || value is NSNull { return JWKSEnvironment() }
        guard let object = value as? [String: Any] else {
            throw RequestDecodingError(
                field: "", reason: "expected a mapping with unreachable: [URI, ...] and latency_ms: {URI: milliseconds}")
        }
        for key in object.keys.sorted() where key != "unreachable" && key != "latency_ms" {
            throw RequestDecodingError(field: key, reason: "unknown field; the environment has unreachable and latency_ms")
        }
        var states: [String: State] = [:]
        if let unreachable = object["unreachable"], !(unreachable is NSNull) {
            guard let uris = unreachable as? [Any], uris.allSatisfy({ $0 is String }) else {
                throw RequestDecodingError(field: "unreachable", reason: "expected a list of JWKS or issuer URIs")
            }
            for case let uri as String in uris { states[uri] = .unreachable }
        }
        if let latencies = object["latency_ms"], !(latencies is NSNull) {
            guard let map = latencies as? [String: Any] else {
                throw RequestDecodingError(field: "latency_ms", reason: "expected a mapping of URI to milliseconds")
            }
            for (uri, latency) in map {
                let milliseconds: Double
                switch latency {
                case let value as Int where value >= 0: milliseconds = Double(value)
                case let value as Double where value >= 0: milliseconds = value
                default:
                    throw RequestDecodingError(
                        field: "latency_ms.\(uri)", reason: "expected a number of milliseconds, found \(latency)")
                }
                states[uri] = .latency(milliseconds)
            }
        }
        return JWKSEnvironment(states: states)
    }
}
