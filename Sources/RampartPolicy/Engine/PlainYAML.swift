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
    /// Reads `{unreachable: [uri, ...], latency_ms: {uri: 500}}`.
    public static func from(_ value: Any?) -> JWKSEnvironment {
        guard let object = value as? [String: Any] else { return JWKSEnvironment() }
        var states: [String: State] = [:]
        for uri in object["unreachable"] as? [String] ?? [] { states[uri] = .unreachable }
        for (uri, latency) in object["latency_ms"] as? [String: Any] ?? [:] {
            if let milliseconds = (latency as? Int).map(Double.init) ?? (latency as? Double) {
                states[uri] = .latency(milliseconds)
            }
        }
        return JWKSEnvironment(states: states)
    }
}
