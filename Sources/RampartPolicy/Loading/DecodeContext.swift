import Yams

/// Reads typed values out of a Yams node tree, recording the line of every field path and
/// reporting unknown fields and wrong types as diagnostics instead of throwing.
final class DecodeContext {
    let file: String
    /// The namespace of a resource whose metadata names none.
    let defaultNamespace: String
    var resource: ResourceID?
    private(set) var diagnostics: [Diagnostic] = []
    private(set) var fieldLines: [String: Int] = [:]

    init(file: String, defaultNamespace: String = "default") {
        self.file = file
        self.defaultNamespace = defaultNamespace
    }

    static func line(of node: Node) -> Int { node.mark?.line ?? 0 }

    /// Names the resource in the diagnostics reported since `start`: those about its metadata,
    /// read before its name and namespace were known.
    func attribute(_ resource: ResourceID, since start: Int) {
        self.resource = resource
        for index in diagnostics.indices.dropFirst(start) where diagnostics[index].resource == nil {
            let old = diagnostics[index]
            diagnostics[index] = Diagnostic(
                code: old.code, severity: old.severity, file: old.file, line: old.line, resource: resource,
                field: old.field, message: old.message, fix: old.fix)
        }
    }

    /// Records the line of a field path once: a field's line is its key's, recorded by the
    /// enclosing mapping before its value (which may start on a later line) is read.
    func record(_ path: String, _ node: Node) {
        if fieldLines[path] == nil { fieldLines[path] = Self.line(of: node) }
    }

    func report(_ code: DiagnosticCode, _ path: String, line: Int, _ message: String, fix: String) {
        diagnostics.append(
            Diagnostic(code: code, file: file, line: line, resource: resource, field: path, message: message, fix: fix)
        )
    }

    func report(_ code: DiagnosticCode, _ path: String, _ node: Node, _ message: String, fix: String) {
        report(code, path, line: Self.line(of: node), message, fix: fix)
    }

    /// Whether the node is YAML null (`~`, `null` or empty), which proto JSON treats as absent.
    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return KubernetesScalars.resolveTag(of: node) == .null
    }

    static func typeName(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if scalar.style != .plain { return "a string" }
            switch KubernetesScalars.resolveTag(of: node) {
            case .int: return "an integer (\(scalar.string))"
            case .float: return "a number (\(scalar.string))"
            case .bool: return "a boolean (\(scalar.string))"
            case .null: return "null"
            default: return "a string"
            }
        }
    }

    /// Whether the node is a plain scalar YAML reads as a number, boolean or null.
    private static func isUnquotedScalar(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return ["an integer", "a number", "a boolean", "null"].contains { typeName(node).hasPrefix($0) }
    }

    private func wrongType(_ path: String, _ node: Node, expected: String, fix: String? = nil) {
        // At the field's key, where a block value (a list under `rules:`) starts a line later.
        report(
            .wrongType, path, line: fieldLines[path] ?? Self.line(of: node), "expected \(expected), found \(Self.typeName(node))",
            fix: fix ?? "write \(expected) here" + (expected.hasPrefix("a string") && Self.isUnquotedScalar(node)
                ? " (quote numbers and booleans that are meant as strings)" : ""))
    }

    /// A mapping's entries; unknown keys are reported and dropped.
    func mapping(_ node: Node, _ path: String, allowed: Set<String>?, what: String) -> [(key: String, value: Node)]? {
        record(path, node)
        guard case .mapping(let mapping) = node else {
            wrongType(path, node, expected: "a mapping (\(what))")
            return nil
        }
        var entries: [(key: String, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode, let reading = KubernetesScalars.jsonKey(of: keyNode) else {
                wrongType(path, keyNode, expected: "a string key")
                continue
            }
            guard case .key(let key) = reading else {
                if case .unsupported(let what) = reading {
                    report(
                        .wrongType, path.isEmpty ? scalar.string : "\(path).\(scalar.string)", keyNode,
                        "the key \(scalar.string) is \(what) to kubectl's YAML reader, which cannot make it a JSON key and refuses the file",
                        fix: "quote the key (\"\(scalar.string)\") if it is meant as text")
                }
                continue
            }
            // An unquoted key kubectl reads as a number or boolean arrives as its JSON spelling.
            let written = key == scalar.string ? "\"\(key)\"" : "\"\(scalar.string)\" (which kubectl sends as \"\(key)\")"
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            if let allowed, !allowed.contains(key) {
                let known = allowed.sorted().joined(separator: ", ")
                let fix = Self.nearest(scalar.string, among: allowed).map { "did you mean \($0)?" }
                    ?? "remove the field or correct its spelling (field names are camelCase)"
                report(
                    .unknownField, childPath, keyNode, "\(what) has no field \(written); known fields: \(known)",
                    fix: fix)
                continue
            }
            record(childPath, keyNode)
            entries.append((key, value))
        }
        return entries
    }

    /// The known field a misspelt one most likely meant: the same name in another case, else the
    /// only one within a few edits (fewer for short names); nil when none or several are that close.
    static func nearest(_ name: String, among known: Set<String>) -> String? {
        if let same = known.first(where: { $0.lowercased() == name.lowercased() }) { return same }
        // Two neighbouring letters swapped (`form` for `from`).
        let letters = Array(name)
        let swapped = known.filter { field in
            let other = Array(field)
            guard other.count == letters.count else { return false }
            let differing = other.indices.filter { other[$0] != letters[$0] }
            return differing.count == 2 && differing[1] == differing[0] + 1
                && other[differing[0]] == letters[differing[1]] && other[differing[1]] == letters[differing[0]]
        }
        if swapped.count == 1 { return swapped.first }
        let limit = name.count <= 4 ? 1 : name.count <= 8 ? 2 : 3
        let close = known.map { ($0, ResourceDecoder.editDistance($0.lowercased(), name.lowercased())) }
            .filter { $0.1 <= limit }
        guard let best = close.min(by: { $0.1 < $1.1 }) else { return nil }
        return close.filter { $0.1 == best.1 }.count == 1 ? best.0 : nil
    }

    /// A string scalar; numbers and booleans written without quotes are wrong types.
    func string(_ node: Node, _ path: String) -> String? {
        record(path, node)
        guard case .scalar(let scalar) = node else {
            wrongType(path, node, expected: "a string")
            return nil
        }
        if scalar.style == .plain {
            let tag = KubernetesScalars.resolveTag(of: node)
            if tag == .int || tag == .float || tag == .bool || tag == .null {
                wrongType(path, node, expected: "a string")
                return nil
            }
        }
        return scalar.string
    }

    /// A boolean scalar.
    func bool(_ node: Node, _ path: String) -> Bool? {
        record(path, node)
        guard case .scalar(let scalar) = node, scalar.style == .plain,
            KubernetesScalars.resolveTag(of: node) == .bool
        else {
            wrongType(path, node, expected: "a boolean (true or false)")
            return nil
        }
        return ["true", "yes", "on", "y"].contains(scalar.string.lowercased())
    }

    /// A list's items, with the path of each.
    func list(_ node: Node, _ path: String) -> [(path: String, node: Node)]? {
        record(path, node)
        guard case .sequence(let sequence) = node else {
            wrongType(path, node, expected: "a list")
            return nil
        }
        return sequence.enumerated().map { index, item in
            let itemPath = "\(path)[\(index)]"
            record(itemPath, item)
            return (itemPath, item)
        }
    }

    /// A list of strings.
    func stringList(_ node: Node, _ path: String) -> [String]? {
        guard let items = list(node, path) else { return nil }
        return items.compactMap { string($0.node, $0.path) }
    }

    /// A mapping of string to string (labels, annotations).
    func stringMap(_ node: Node, _ path: String, what: String) -> [String: String]? {
        guard let entries = mapping(node, path, allowed: nil, what: what) else { return nil }
        var result: [String: String] = [:]
        for (key, value) in entries {
            if let string = string(value, "\(path).\(key)") { result[key] = string }
        }
        // A key kubectl sends as other text than it shows (`yes` as `true`, `010` as `8`) is
        // rarely meant: say what it becomes.
        for case (.scalar(let written), _) in node.mapping.map(Array.init) ?? [] {
            guard case .key(let key)? = KubernetesScalars.jsonKey(of: .scalar(written)), key != written.string else { continue }
            report(
                .convertedKey, "\(path).\(key)", line: Self.line(of: .scalar(written)),
                "the key \(written.string) is an unquoted YAML 1.1 \(key == "true" || key == "false" ? "boolean" : "number"), which kubectl sends as \"\(key)\"",
                fix: "quote the key ('\(written.string)') if \(written.string) is meant")
        }
        return result
    }
}
