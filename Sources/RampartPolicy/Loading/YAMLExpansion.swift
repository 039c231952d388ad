import Yams

/// What a document's aliases and merge keys make of it, settled before the document is decoded.
///
/// - Aliases (`*name`) expand each time they are used. A document whose aliases multiply it past
///   `valueLimit` values (a "billion laughs" document) is refused before any of it is decoded, as
///   Kubernetes' YAML reader refuses excessive aliasing; no document Kubernetes can store holds
///   that many values written out.
/// - Merge keys (`<<: *defaults`, or a list of such mappings) are resolved as YAML 1.1 and
///   kubectl resolve them: the merged mappings' keys are added where the mapping does not set them
///   itself, an earlier mapping of a list taking precedence over a later one.
enum YAMLExpansion {
    /// The most values (scalars, mappings and lists, aliases counted each time they are used) a
    /// document may hold.
    static let valueLimit = PlainYAML.valueLimit

    /// Whether the document holds more than `limit` values once its aliases expand, and whether it
    /// has merge keys. The walk stops as soon as the limit is passed.
    static func survey(_ node: Node, limit: Int = valueLimit) -> (exceeds: Bool, hasMerges: Bool) {
        var budget = limit
        var merges = false
        var pending = [node]
        while let next = pending.popLast() {
            budget -= 1
            if budget < 0 { return (true, merges) }
            switch next {
            case .mapping(let mapping):
                for (key, value) in mapping {
                    if isMergeKey(key) { merges = true }
                    pending.append(value)
                }
            case .sequence(let sequence):
                pending.append(contentsOf: sequence)
            case .scalar, .alias:
                break
            }
        }
        return (false, merges)
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
