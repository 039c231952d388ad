import Foundation
import Yams

/// Parses YAML or JSON into plain values (`[String: Any]`, `[Any]`, `String`, `Int`, `Double`, `Bool`),
/// for input files that are not Istio resources: requests, workload lists, JWKS environments.
public enum PlainYAML {
    /// Parses the first document of the text.
    ///
    /// The document is composed into nodes and converted here rather than by Yams' own
    /// constructor, which stops the process on a key that is itself a mapping or a list
    /// (`{a: 1}: x`); such keys, and documents that expand through aliases to more than
    /// `valueLimit` values, are refused with an error instead.
    ///
    /// Scalars at paths `verbatim` accepts (`headers.x-env`, `destination.labels.version`) are
    /// kept as written, not resolved: a header or label value `1.10` stays `1.10`, not the number
    /// 1.1, and `yes` stays `yes`.
    public static func parse(_ text: String, verbatim: (String) -> Bool = { _ in false }) throws(RequestDecodingError) -> Any? {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            let problem = YAMLProblem(error)
            throw RequestDecodingError(
                field: "", reason: "not valid YAML or JSON: \(problem.message) (fix: \(problem.fix))",
                line: problem.line > 0 ? problem.line : nil)
        }
        guard var node else { return nil }
        if YAMLExpansion.survey(node, limit: valueLimit, byteLimit: .max).hasMerges { node = YAMLExpansion.resolvingMerges(node) }
        var budget = valueLimit
        return try plain(node, path: "", verbatim: verbatim, budget: &budget)
    }

    /// The most values (scalars, mappings and lists, aliases counted each time they are used) a
    /// document may hold; a workload list for a mesh of tens of thousands of workloads stays well
    /// below it.
    static let valueLimit = 1_000_000

    /// A node as plain values: a mapping with string keys, a list, or a scalar as the type YAML 1.1
    /// resolves it to (null, bool, int, float, else string).
    private static func plain(
        _ node: Node, path: String, verbatim: (String) -> Bool, budget: inout Int
    ) throws(RequestDecodingError) -> Any {
        budget -= 1
        guard budget >= 0 else {
            throw RequestDecodingError(
                field: path, reason: "the document holds more than \(valueLimit) values (aliases expand each time they are used)")
        }
        if let problem = YAMLTags.problem(node) {
            throw RequestDecodingError(field: path, reason: "\(problem.message) (fix: \(problem.fix))", line: problem.line)
        }
        switch node {
        case .scalar(let scalar):
            if verbatim(path) && node.tag.rawValue != Tag.Name.null.rawValue { return scalar.string }
            switch node.tag.rawValue {
            case Tag.Name.null.rawValue: return NSNull()
            case Tag.Name.bool.rawValue: return node.bool ?? scalar.string
            case Tag.Name.int.rawValue: return node.int ?? scalar.string
            case Tag.Name.float.rawValue: return node.float ?? scalar.string
            default: return scalar.string
            }
        case .mapping(let mapping):
            var object: [String: Any] = [:]
            for (key, value) in mapping {
                guard case .scalar(let name) = key else {
                    let line = key.mark.map { " (line \($0.line))" } ?? ""
                    throw RequestDecodingError(
                        field: path, reason: "a key\(line) is a mapping or a list; keys must be plain names")
                }
                let field = path.isEmpty ? name.string : "\(path).\(name.string)"
                object[name.string] = try plain(value, path: field, verbatim: verbatim, budget: &budget)
            }
            return object
        case .sequence(let sequence):
            var list: [Any] = []
            for (index, element) in sequence.enumerated() {
                list.append(try plain(element, path: "\(path)[\(index)]", verbatim: verbatim, budget: &budget))
            }
            return list
        case .alias:
            throw RequestDecodingError(field: path, reason: "an alias (*name) that refers to nothing")
        }
    }

    /// The line of the field at `path` (`destination.labels`, `[1].ports[0].port`, `headers.x-env`)
    /// in the first document of `text`: that of its key in a mapping, of its entry in a list; the
    /// line of the deepest field found when the path goes further than the document.
    public static func line(of path: String, in text: String) -> Int? {
        guard let root = try? Yams.compose(yaml: text) else { return nil }
        var node = root
        var line = root.mark?.line
        var rest = Substring(path)
        while !rest.isEmpty {
            if rest.hasPrefix(".") { rest = rest.dropFirst() }
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]"), let index = Int(rest[rest.index(after: rest.startIndex)..<close]),
                    case .sequence(let sequence) = node, sequence.indices.contains(index)
                else { break }
                node = sequence[index]
                line = node.mark?.line ?? line
                rest = rest[rest.index(after: close)...]
                continue
            }
            guard case .mapping(let mapping) = node else { break }
            // The longest key the path continues from (a header name may hold a dot).
            let match = mapping.compactMap { key, value -> (name: String, key: Node, value: Node)? in
                guard case .scalar(let scalar) = key, rest.hasPrefix(scalar.string) else { return nil }
                let after = rest.dropFirst(scalar.string.count)
                return after.isEmpty || after.hasPrefix(".") || after.hasPrefix("[") ? (scalar.string, key, value) : nil
            }.max { $0.name.count < $1.name.count }
            guard let match else { break }
            line = match.key.mark?.line ?? line
            node = match.value
            rest = rest.dropFirst(match.name.count)
        }
        return line
    }

    /// Reads and parses a file.
    public static func parse(file: String) throws(RequestDecodingError) -> Any? {
        try decode(file: file, what: "file") { value throws(RequestDecodingError) in value }
    }

    /// Reads `file` (a pipe too), parses it and hands the value to `decode`. A file that cannot be
    /// read says why and what to do; an error `decode` throws is placed at its field's line.
    static func decode<T>(
        file: String, what: String, _ decode: (Any?) throws(RequestDecodingError) -> T
    ) throws(RequestDecodingError) -> T {
        guard let text = PolicyLoader.text(ofFile: file) else {
            let problem = PolicyLoader.readProblem(file, what: what)
            throw RequestDecodingError(
                field: "", reason: "\(problem.message)\(problem.line > 0 ? " (line \(problem.line))" : ""): \(problem.fix)")
        }
        do {
            return try decode(try parse(text))
        } catch {
            throw error.located(in: text)
        }
    }
}

extension Workload {
    /// Reads a workload list from a file (see `list(from:)`); a field at fault is placed at its line.
    public static func list(file: String) throws(RequestDecodingError) -> [Workload] {
        try PlainYAML.decode(file: file, what: "workload list") { value throws(RequestDecodingError) in try list(from: value) }
    }

    /// Reads a workload list: `[{namespace: ns1, name: b, labels: {app: b}, ports: [...]}, ...]`.
    /// `name` and `ports` are optional. A port is a number, or `{port, name, appProtocol}` as in a
    /// Kubernetes Service (`protocol: TCP|UDP|SCTP` is accepted and ignored); its protocol is read as
    /// Istio reads it, from `appProtocol`, else from the name's prefix (`http-web`, `tcp-db`,
    /// `grpc`); a port whose protocol is neither given is left out of the port checks.
    public static func list(from value: Any?) throws(RequestDecodingError) -> [Workload] {
        guard let items = value as? [Any] else {
            let wrapped = (value as? [String: Any]).map { Array($0.keys) == ["workloads"] } ?? false
            throw RequestDecodingError(
                field: "",
                reason: wrapped
                    ? "expected a list of {namespace, labels} mappings at the top level; remove the `workloads:` key and keep its list"
                    : "expected a list of {namespace, labels} mappings (`- namespace: shop` then `labels: {app: cart}`)")
        }
        var workloads: [Workload] = []
        for (index, element) in items.enumerated() {
            let at = "[\(index)]"
            guard let item = element as? [String: Any] else {
                throw RequestDecodingError(field: at, reason: "expected a mapping with namespace, labels, and optionally name and ports")
            }
            for key in item.keys.sorted() where !["namespace", "labels", "name", "ports"].contains(key) {
                throw RequestDecodingError(field: "\(at).\(key)", reason: "unknown field; a workload has namespace, labels, name and ports")
            }
            guard let namespace = item["namespace"] as? String ?? (item["namespace"] == nil ? "default" : nil) else {
                throw RequestDecodingError(field: "\(at).namespace", reason: "expected a namespace name")
            }
            guard let labelMap = item["labels"] as? [String: Any] ?? (item["labels"] == nil ? [:] : nil) else {
                throw RequestDecodingError(field: "\(at).labels", reason: "expected a mapping of label names to values")
            }
            let name = item["name"].map { "\($0)" }
            var ports: [Port] = []
            if let raw = item["ports"] {
                guard let list = raw as? [Any] else {
                    throw RequestDecodingError(field: "\(at).ports", reason: "expected a list of ports")
                }
                for (position, entry) in list.enumerated() {
                    if let port = try Self.port(entry, field: "\(at).ports[\(position)]") { ports.append(port) }
                }
            }
            workloads.append(Workload(namespace: namespace, labels: labelMap.mapValues { "\($0)" }, name: name, ports: ports))
        }
        return workloads
    }

    /// One port entry, nil when its protocol is not given (Istio then sniffs it).
    private static func port(_ entry: Any, field: String) throws(RequestDecodingError) -> Port? {
        if entry is Int { return nil }
        guard let object = entry as? [String: Any] else {
            throw RequestDecodingError(field: field, reason: "expected a port number or {port, name, appProtocol}")
        }
        for key in object.keys.sorted() where !["port", "name", "appProtocol", "protocol", "targetPort"].contains(key) {
            throw RequestDecodingError(field: "\(field).\(key)", reason: "unknown field; a port has port, name and appProtocol")
        }
        guard let number = object["port"] as? Int, (1...65535).contains(number) else {
            throw RequestDecodingError(field: "\(field).port", reason: "expected a port number from 1 to 65535")
        }
        let declared = (object["appProtocol"] as? String) ?? (object["name"] as? String).map(Self.protocolOfName)
        guard let declared, let isHTTP = Self.isHTTP(protocol: declared) else { return nil }
        return Port(port: number, isHTTP: isHTTP)
    }

    /// The protocol a port name declares in Istio's convention: `<protocol>[-<suffix>]`.
    static func protocolOfName(_ name: String) -> String {
        let lower = name.lowercased()
        if lower == "grpc-web" || lower.hasPrefix("grpc-web-") { return "grpc-web" }
        return String(lower.split(separator: "-", maxSplits: 1).first ?? "")
    }

    /// Whether Istio serves a protocol as HTTP (true), as TCP (false), or does not know it (nil).
    static func isHTTP(protocol name: String) -> Bool? {
        switch name.lowercased() {
        case "http", "http2", "grpc", "grpc-web", "kubernetes.io/h2c": return true
        case "tcp", "tls", "https", "mongo", "mysql", "redis": return false
        default: return nil
        }
    }
}

extension JWKSEnvironment {
    /// Reads an environment from a file; a field at fault is placed at its line.
    public static func from(file: String) throws(RequestDecodingError) -> JWKSEnvironment {
        try PlainYAML.decode(file: file, what: "JWKS environment") { value throws(RequestDecodingError) in try from(value) }
    }

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
