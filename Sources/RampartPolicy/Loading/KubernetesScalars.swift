import Yams

/// The type of a plain YAML scalar as kubectl reads it.
///
/// kubectl turns YAML into JSON with go-yaml v2, whose scalars are YAML 1.1's with two
/// differences from Yams' resolver: `y`, `Y`, `n` and `N` are booleans, and there are no base-60
/// numbers (`10:30` and `1:30.5` are strings). A value of a string field written `y` is refused
/// by the API server as a boolean, and a header value written `10:30` reaches it as the string it
/// looks like; Rampart reads both the same way.
enum KubernetesScalars {
    static func resolveTag(of node: Node) -> Tag.Name {
        let tag = Resolver.default.resolveTag(of: node)
        guard case .scalar(let scalar) = node, Tag.Name(rawValue: scalar.tag.description) == .implicit else { return tag }
        switch tag {
        case .str where ["y", "Y", "n", "N"].contains(scalar.string):
            return .bool
        case .int where scalar.string.contains(":"), .float where scalar.string.contains(":"):
            return .str
        default:
            return tag
        }
    }
}
