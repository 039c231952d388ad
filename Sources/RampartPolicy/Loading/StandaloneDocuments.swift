import Yams

/// The resources of a YAML text, each as a document that reads back on its own as that resource:
/// what `rampart apply` stores for each.
///
/// A document that is one resource and names its namespace is stored as written, comments
/// included, so its entry carries no text: the caller cuts it out of the file. Two kinds of
/// resource have no such document and are rendered anew from their YAML nodes:
/// - an item of a `List` (`kubectl get … -o yaml` writes several resources so);
/// - a document that names no namespace when `apply -n` gives one: the namespace is written into
///   its `metadata`, so that the stored text says where it lives.
public enum StandaloneDocuments {
    /// One resource found in the text.
    public struct Entry: Sendable, Hashable {
        /// Its kind, namespace (the default one filled in) and name.
        public let id: ResourceID
        /// The line its mapping starts on.
        public let line: Int
        /// Whether the document names its namespace.
        public let namespaceGiven: Bool
        /// The text to store when the resource's document as written cannot be stored as it is;
        /// nil when it can.
        public let rendered: String?
    }

    /// The resources of `yaml`, in document order, a `List`'s items in their order. Documents
    /// that are not resources of a supported kind, or whose kind or metadata cannot be read, are
    /// left out: loading reports them. `namespace` is `apply -n`'s namespace, nil without it.
    public static func entries(yaml: String, file: String, namespace: String?) -> [Entry] {
        guard var documents = try? Yams.compose_all(yaml: yaml) else { return [] }
        var entries: [Entry] = []
        while let document = documents.next() {
            if DecodeContext.isNull(document) { continue }
            if let items = PolicyLoader.listItems(document) {
                for item in items where !DecodeContext.isNull(item) {
                    if let entry = entry(item, file: file, namespace: namespace, inList: true) { entries.append(entry) }
                }
            } else if let entry = entry(document, file: file, namespace: namespace, inList: false) {
                entries.append(entry)
            }
        }
        return entries
    }

    private static func entry(_ node: Node, file: String, namespace: String?, inList: Bool) -> Entry? {
        let context = DecodeContext(file: file, defaultNamespace: namespace ?? "default")
        guard let found = ResourceDecoder(context: context).identify(node),
            !context.diagnostics.contains(where: { $0.severity == .error })
        else { return nil }
        let filling = found.namespaceGiven ? nil : namespace
        let rendered = inList || filling != nil ? render(node, namespace: filling) : nil
        return Entry(id: found.id, line: found.line, namespaceGiven: found.namespaceGiven, rendered: rendered)
    }

    /// A stored document as `get -o yaml` prints it: as written when it names its namespace, else
    /// rendered anew with `namespace` written in, as kubectl always prints the namespace (so that
    /// the output applies back to the same namespace whatever `-n` says). A document applied as
    /// JSON is rendered as block YAML, as kubectl prints YAML whatever was applied.
    public static func withNamespace(_ yaml: String, namespace: String) -> String {
        guard let node = try? Yams.compose(yaml: yaml), case .mapping(let root) = node,
            case .mapping(let metadata)? = root["metadata"]
        else { return yaml }
        let named = metadata["namespace"]?.string.map { !$0.isEmpty } ?? false
        if named && !isJSON(yaml) { return yaml }
        return render(node, namespace: named ? nil : namespace) ?? yaml
    }

    /// A stored document as `get -o yaml` prints it, with what the store knows of it in its
    /// `metadata`, as kubectl prints a resource: the store's `creationTimestamp` (one the document
    /// gives, exported from elsewhere, is replaced: the store's orders competing
    /// PeerAuthentications) and its `generation`. They are written into the text, first in the
    /// metadata (in kubectl's order), so the rest of the document stays as written, comments
    /// included; a document they cannot be written into so (one giving another generation or
    /// creation time, say) is rendered anew with them.
    public static func withStoreFields(_ yaml: String, creationTimestamp: String, generation: Int) -> String {
        guard let node = try? Yams.compose(yaml: yaml), case .mapping(var root) = node,
            case .mapping(var metadata)? = root["metadata"]
        else { return yaml }
        let created = metadata["creationTimestamp"].flatMap { DecodeContext.isNull($0) ? nil : $0 }
        let sameCreation = created?.string == creationTimestamp
        let written = metadata["generation"]
        if sameCreation && written?.int == generation { return yaml }
        var fields: [(key: String, value: String)] = []
        if created == nil { fields.append(("creationTimestamp", "\"\(creationTimestamp)\"")) }
        fields.append(("generation", String(generation)))
        if written == nil, created == nil || sameCreation, let inserted = inserting(fields, into: metadata, of: yaml),
            let check = try? Yams.compose(yaml: inserted), case .mapping(let checkedRoot) = check,
            case .mapping(let checked)? = checkedRoot["metadata"], checked["generation"]?.int == generation,
            checked["creationTimestamp"]?.string == creationTimestamp
        {
            return inserted
        }
        metadata[Node("creationTimestamp")] = Node(creationTimestamp, Tag(.str))
        metadata[Node("generation")] = Node(String(generation), Tag(.int))
        root["metadata"] = .mapping(metadata)
        return (try? Yams.serialize(node: restyled(.mapping(root)), width: -1, allowUnicode: true)) ?? yaml
    }

    /// `yaml` with `fields` written first in the `metadata` mapping: in flow style
    /// (`{name: a}`) just after its brace, in block style as lines above its first key, at that
    /// key's indentation. Nil when the text is not laid out as the marks say.
    private static func inserting(_ fields: [(key: String, value: String)], into metadata: Node.Mapping, of yaml: String) -> String? {
        // Split on LF alone (a CRLF line keeps its CR), as the parser counts lines.
        var lines = yaml.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
        guard let mark = metadata.mark, mark.line >= 1, mark.line <= lines.count else { return nil }
        var scalars = Array(lines[mark.line - 1].unicodeScalars)
        let at = mark.column - 1
        guard at >= 0, at < scalars.count else { return nil }
        if scalars[at] == "{" {
            let empty = scalars[(at + 1)...].first { $0 != " " } == "}"
            let text = fields.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + (empty ? "" : ", ")
            scalars.insert(contentsOf: text.unicodeScalars, at: at + 1)
            var line = String.UnicodeScalarView()
            line.append(contentsOf: scalars)
            lines[mark.line - 1] = String(line)
            return lines.joined(separator: "\n")
        }
        guard let first = metadata.keys.first?.mark, first.line >= 1, first.line <= lines.count else { return nil }
        let keyLine = lines[first.line - 1]
        let indent = keyLine.prefix { $0 == " " }
        guard indent.count == first.column - 1 else { return nil }
        let ending = keyLine.unicodeScalars.last == "\r" ? "\r" : ""
        lines.insert(contentsOf: fields.map { "\(indent)\($0.key): \($0.value)\(ending)" }, at: first.line - 1)
        return lines.joined(separator: "\n")
    }

    /// Whether a document is written as JSON: one mapping whose first key is quoted (`{"apiVersion":`),
    /// after any comments and a leading `---`. A YAML flow mapping (`{apiVersion: ...}`) is not.
    static func isJSON(_ yaml: String) -> Bool {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\u{FEFF}" }
        var text = Substring(yaml)
        while true {
            text = text.drop(while: blank)
            if text.hasPrefix("#") {
                text = text.drop { $0 != "\n" }
            } else if text.hasPrefix("---") {
                text = text.dropFirst(3)
            } else {
                break
            }
        }
        guard text.hasPrefix("{") else { return false }
        return text.dropFirst().drop(while: blank).hasPrefix("\"")
    }

    /// The node as a block-style document of its own, with `metadata.namespace` set when
    /// `namespace` is given.
    static func render(_ node: Node, namespace: String?) -> String? {
        guard case .mapping(var root) = node else { return nil }
        if let namespace {
            guard case .mapping(var metadata)? = root["metadata"] else { return nil }
            metadata["namespace"] = Node(namespace, Tag(.str))
            root["metadata"] = .mapping(metadata)
        }
        return try? Yams.serialize(node: restyled(.mapping(root)), width: -1, allowUnicode: true)
    }

    /// The node laid out as a resource is usually written: collections in block style, strings
    /// plain unless plain text would read as another type (`"8080"`, `"true"`, `"null"` stay
    /// quoted), every other scalar as written. A JSON document's quoting goes, its values stay.
    private static func restyled(_ node: Node) -> Node {
        switch node {
        case .scalar(var scalar):
            let type = KubernetesScalars.resolveTag(of: node)
            let plainType = KubernetesScalars.resolveTag(of: Node(scalar.string))
            scalar.style = type == .str && plainType != .str ? .singleQuoted : .any
            if type == .str { scalar.tag = Tag(.str) }
            return .scalar(scalar)
        case .mapping(let mapping):
            var pairs: [(Node, Node)] = []
            for (key, value) in mapping { pairs.append((restyled(key), restyled(value))) }
            return .mapping(Node.Mapping(pairs, mapping.tag, pairs.isEmpty ? .flow : .block, mapping.mark))
        case .sequence(let sequence):
            let items = sequence.map(restyled)
            return .sequence(Node.Sequence(items, sequence.tag, items.isEmpty ? .flow : .block, sequence.mark))
        case .alias:
            return node
        }
    }
}
