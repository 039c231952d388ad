import Yams

/// Explicit YAML tags (`!!str`, `!!int`, `!!null`, `!custom` …) checked the way Kubernetes' YAML
/// reader checks them, before anything reads the values.
///
/// A tag that agrees with its value is accepted: `!!str` on any scalar, `!!int 8080`, `!!null ~`,
/// `!!map` on a mapping, `!!seq` on a list. A standard tag that cannot hold its value
/// (`!!null DENY`, `!!int abc`) is refused, as kubectl refuses it; without that check a value
/// would silently read as null or as something else. Every other tag (`!!binary`, `!!timestamp`,
/// `!!set`, application tags) is refused too: a security resource has no use for one, and
/// reading the text beneath it as if it were not there could change what a policy means.
enum YAMLTags {
    /// One refused tag: where, what, and what to do.
    struct Problem: Equatable {
        let line: Int
        let message: String
        let fix: String
    }

    /// The refused tags of a document, in document order, at most `limit` of them.
    static func problems(in node: Node, limit: Int = 20) -> [Problem] {
        var found: [Problem] = []
        var pending = [node]
        while let next = pending.popLast(), found.count < limit {
            if let problem = problem(next) { found.append(problem) }
            switch next {
            case .mapping(let mapping):
                for (key, value) in mapping.reversed() {
                    pending.append(value)
                    pending.append(key)
                }
            case .sequence(let sequence):
                pending.append(contentsOf: sequence.reversed())
            case .scalar, .alias:
                break
            }
        }
        return found
    }

    /// The problem with one node's own tag, if it has one.
    static func problem(_ node: Node) -> Problem? {
        let line = node.mark?.line ?? 0
        switch node {
        case .scalar(let scalar):
            let name = Tag.Name(rawValue: scalar.tag.description)
            if name == .implicit || name == .nonSpecific || name == .str { return nil }
            // The parser's implicit tags are resolved in place once a node is hashed (a mapping
            // lookup does that), so a tag equal to what the plain text resolves to is accepted
            // whether it was written or resolved: `<<` reads as !!merge, `8080` as !!int.
            let plain = Resolver.default.resolveTag(of: Node.scalar(.init(scalar.string)))
            if name == plain { return nil }
            let fits: Bool
            switch name {
            case .null: fits = plain == .null
            case .bool: fits = plain == .bool
            case .int: fits = plain == .int
            case .float: fits = plain == .float || plain == .int
            default:
                return unsupported(name, line: line)
            }
            if fits { return nil }
            let text = YAMLProblem.clip(scalar.string)
            return Problem(
                line: line, message: "the tag \(short(name)) cannot hold \"\(text)\"",
                fix: "remove the tag, or write a value of that type")
        case .mapping(let mapping):
            let name = Tag.Name(rawValue: mapping.tag.description)
            return name == .implicit || name == .nonSpecific || name == .map ? nil : unsupported(name, line: line)
        case .sequence(let sequence):
            let name = Tag.Name(rawValue: sequence.tag.description)
            return name == .implicit || name == .nonSpecific || name == .seq ? nil : unsupported(name, line: line)
        case .alias:
            return nil
        }
    }

    private static func unsupported(_ name: Tag.Name, line: Int) -> Problem {
        Problem(
            line: line, message: "the tag \(short(name)) is not supported here",
            fix: "remove the tag and write the value as plain YAML (a string, number, boolean, list or mapping)")
    }

    /// A tag as it is written: `!!null` for YAML's own, the name itself for others.
    static func short(_ name: Tag.Name) -> String {
        let prefix = "tag:yaml.org,2002:"
        let raw = name.rawValue
        return YAMLProblem.clip(raw.hasPrefix(prefix) ? "!!" + raw.dropFirst(prefix.count) : raw)
    }
}
