import Yams

/// What a document's aliases and merge keys make of it, settled before the document is decoded.
///
/// - Aliases (`*name`) expand each time they are used. A document whose aliases multiply it past
///   `valueLimit` values or `byteLimit` bytes of text (a "billion laughs" document) is refused
///   before any of it is decoded, as
///   Kubernetes' YAML reader refuses excessive aliasing; no document Kubernetes can store holds
///   that many values written out.
/// - Merge keys (`<<: *defaults`, or a list of such mappings) are resolved as YAML 1.1 and
///   kubectl resolve them: the merged mappings' keys are added where the mapping does not set them
///   itself, an earlier mapping of a list taking precedence over a later one.
enum YAMLExpansion {
    /// The most values (scalars, mappings and lists, aliases counted each time they are used) a
    /// resource's document may hold: far more than any resource the API server would take.
    static let valueLimit = 100_000
    /// The most bytes of scalar text a document may hold once its aliases expand: the
    /// Kubernetes API server's limit on a request body (3 MiB), which no resource kubectl can
    /// apply goes past.
    static let byteLimit = 3 * 1024 * 1024

    /// Whether the document holds more than `limit` values or `byteLimit` bytes of text once its
    /// aliases expand, and whether it has merge keys. The walk stops as soon as a limit is passed.
    static func survey(_ node: Node, limit: Int = valueLimit, byteLimit: Int = byteLimit) -> (exceeds: Bool, hasMerges: Bool) {
        var budget = limit
        var bytes = byteLimit
        var merges = false
        var pending = [node]
        while let next = pending.popLast() {
            budget -= 1
            if budget < 0 { return (true, merges) }
            switch next {
            case .mapping(let mapping):
                for (key, value) in mapping {
                    if isMergeKey(key) { merges = true }
                    if case .scalar(let name) = key { bytes -= name.string.utf8.count }
                    pending.append(value)
                }
            case .sequence(let sequence):
                pending.append(contentsOf: sequence)
            case .scalar(let scalar):
                bytes -= scalar.string.utf8.count
            case .alias:
                break
            }
            if bytes < 0 { return (true, merges) }
        }
        return (false, merges)
    }

    /// The line of a value the document holds through an alias to an anchor of an earlier
    /// document, if it holds one. The parser keeps anchors from one document to the next, where
    /// YAML (and kubectl, which reads each document alone) scopes them to their own; a value
    /// that an alias copied from an earlier document keeps its place there, before this
    /// document's first line.
    static func earlierDocumentLine(in document: Node) -> Int? {
        guard let start = document.mark?.line else { return nil }
        var pending = [document]
        while let next = pending.popLast() {
            if let line = next.mark?.line, line < start { return line }
            switch next {
            case .mapping(let mapping):
                for (key, value) in mapping {
                    pending.append(key)
                    pending.append(value)
                }
            case .sequence(let sequence):
                pending.append(contentsOf: sequence)
            case .scalar, .alias:
                break
            }
        }
        return nil
    }

    /// Whether a mapping key is YAML's merge key: a plain `<<`.
    static func isMergeKey(_ key: Node) -> Bool {
        guard case .scalar(let scalar) = key else { return false }
        return scalar.style == .plain && scalar.string == "<<"
    }

    /// The node with its merge keys resolved, at every depth. A merge key whose value is neither a
    /// mapping nor a list of mappings is kept, for the decoder to report.
    static func resolvingMerges(_ node: Node) -> Node {
        switch node {
        case .mapping(let mapping):
            var explicit: [(Node, Node)] = []
            var merged: [[(Node, Node)]] = []
            for (key, value) in mapping {
                guard isMergeKey(key), let sources = mergeSources(value) else {
                    explicit.append((key, resolvingMerges(value)))
                    continue
                }
                for source in sources {
                    guard case .mapping(let resolved) = resolvingMerges(source) else { continue }
                    merged.append(resolved.map { ($0.key, $0.value) })
                }
            }
            var pairs = explicit
            var names = Set(explicit.compactMap { $0.0.scalar?.string })
            for group in merged {
                for (key, value) in group where names.insert(key.scalar?.string ?? "").inserted {
                    pairs.append((key, value))
                }
            }
            return .mapping(Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark))
        case .sequence(let sequence):
            return .sequence(Node.Sequence(sequence.map(resolvingMerges), sequence.tag, sequence.style, sequence.mark))
        case .scalar, .alias:
            return node
        }
    }

    /// The mappings a merge key's value names, in precedence order; nil when it names something else.
    private static func mergeSources(_ value: Node) -> [Node]? {
        switch value {
        case .mapping: return [value]
        case .sequence(let sequence):
            let items = Array(sequence)
            return items.allSatisfy({ $0.mapping != nil }) && !items.isEmpty ? items : nil
        default: return nil
        }
    }
}
