import Foundation
import RampartPolicy
import RampartStore

/// What `rampart apply` read from its files: the resources to store, each with its own YAML
/// document as written, and every finding that decides whether the batch may be stored.
struct ConfigBatch {
    /// The resources, in load order (files sorted by path, documents in file order).
    let inputs: [ConfigResourceInput]
    /// The same resources as read.
    let resources: [SecurityResource]
    /// Loading, validation and analysis findings, errors and warnings.
    let diagnostics: [Diagnostic]
    /// Problems found by `apply` itself (a resource named twice, a document it could not isolate),
    /// rendered like diagnostics: `file:line: error: resource: message (fix: …)`.
    let problems: [String]

    /// The number of findings that refuse the batch.
    var errorCount: Int { diagnostics.filter { $0.severity == .error }.count + problems.count }

    /// Loads and checks files and folders; never throws, every problem is reported.
    ///
    /// Each resource is stored as its own YAML document, cut out of its file as written. An item
    /// of a `List`, and a document naming no namespace when `namespace` (`apply -n`) is given, have
    /// no such document: they are stored rendered on their own, the namespace written in. As with
    /// kubectl, a document naming a namespace other than `namespace` refuses the batch.
    static func load(paths: [String], namespace: String? = nil, rootNamespace: String = "istio-system") -> ConfigBatch {
        let loaded = PolicyLoader.load(paths: paths, defaultNamespace: namespace ?? "default")
        let diagnostics = PolicyEngine.inReadingOrder(
            PolicyEngine.withoutFollowOns(
                loaded.diagnostics, PolicyAnalyzer.analyze(loaded.resources, reading: loaded.diagnostics, rootNamespace: rootNamespace)))
        var problems: [String] = []
        var inputs: [ConfigResourceInput] = []
        var seen: Set<ResourceID> = []
        // Per file, looked up by the resource's position: a batch of thousands of documents in one
        // file takes no scan per resource.
        var documents: [String: [YAMLDocumentSpan]] = [:]
        var standalone: [String: [ResourceLine: StandaloneDocuments.Entry]] = [:]
        // The files and resources with errors, for `refused(within:)`.
        let errors = diagnostics.filter { $0.severity == .error }
        let refusedResources = Set(errors.compactMap(\.resource))
        let unattributed = errors.filter { $0.resource == nil }
        for resource in loaded.resources {
            let id = resource.id
            let location = resource.location
            // A second definition is reported by the analyzer (RP065) and refuses the batch.
            guard seen.insert(id).inserted else { continue }
            if standalone[location.file] == nil {
                let entries =
                    PolicyLoader.text(ofFile: location.file).map {
                        StandaloneDocuments.entries(yaml: $0, file: location.file, namespace: namespace)
                    } ?? []
                standalone[location.file] = Dictionary(
                    entries.map { (ResourceLine(id: $0.id, line: $0.line), $0) }, uniquingKeysWith: { first, _ in first })
            }
            let entry = standalone[location.file]?[ResourceLine(id: id, line: location.line)]
            // A resource refused for its own errors (an invalid namespace among them) is not
            // also told to match -n: the fix it would be given could name that invalid namespace.
            if let namespace, entry?.namespaceGiven == true, id.namespace != namespace, !refusedResources.contains(id) {
                let line = location.line(of: "metadata.namespace")
                problems.append(
                    "\(location.file):\(line): error: \(id) metadata.namespace: the document names namespace \(id.namespace), not \(namespace) as -n says (fix: drop -n to apply each resource in the namespace its document names, or give -n \(id.namespace))"
                )
                continue
            }
            // A resource with errors of its own is refused for them; its document reads back with
            // the same errors, which say nothing about how it was cut.
            func refused(within document: YAMLDocumentSpan?) -> Bool {
                refusedResources.contains(id)
                    || unattributed.contains { diagnostic in
                        diagnostic.file == location.file && document?.contains(line: diagnostic.line) == true
                    }
            }
            if let rendered = entry?.rendered {
                if let problem = isolationProblem(
                    rendered, what: "its YAML, rendered on its own,", id: id, location: location, refused: refused(within: nil),
                    fix: "write it as a document of its own, separated by lines holding only ---")
                {
                    problems.append(problem)
                    continue
                }
                inputs.append(ConfigResourceInput(kind: id.kind.rawValue, namespace: id.namespace, name: id.name, yaml: rendered))
                continue
            }
            if documents[location.file] == nil { documents[location.file] = spans(of: location.file) }
            guard let document = documents[location.file].flatMap({ Self.span($0, holding: location.line) }) else {
                problems.append(
                    "\(location.file):\(location.line): error: \(id): the resource's own YAML document could not be cut out of the file (fix: separate documents with a line holding only ---)"
                )
                continue
            }
            if let problem = isolationProblem(
                document.text, what: "its YAML document (lines \(document.firstLine)-\(document.lastLine))", id: id,
                location: location, refused: refused(within: document),
                fix: "put each resource in its own document, separated by a line holding only ---")
            {
                problems.append(problem)
                continue
            }
            inputs.append(ConfigResourceInput(kind: id.kind.rawValue, namespace: id.namespace, name: id.name, yaml: document.text))
        }
        return ConfigBatch(inputs: inputs, resources: loaded.resources, diagnostics: diagnostics, problems: problems)
    }

    /// A resource at a line of its file.
    private struct ResourceLine: Hashable {
        let id: ResourceID
        let line: Int
    }

    /// The span holding `line`, found by bisection: spans come in file order and do not overlap.
    private static func span(_ spans: [YAMLDocumentSpan], holding line: Int) -> YAMLDocumentSpan? {
        var low = 0, high = spans.count
        while low < high {
            let middle = (low + high) / 2
            if spans[middle].lastLine < line { low = middle + 1 } else { high = middle }
        }
        return low < spans.count && spans[low].contains(line: line) ? spans[low] : nil
    }

    private static func spans(of file: String) -> [YAMLDocumentSpan] {
        guard let text = PolicyLoader.text(ofFile: file) else { return [] }
        return YAMLDocuments.split(text)
    }

    /// Re-loads the document to store on its own: it must be exactly the resource the whole file
    /// gave, so that what is stored reads back as what was validated.
    private static func isolationProblem(
        _ text: String, what: String, id: ResourceID, location: SourceLocation, refused: Bool, fix: String
    ) -> String? {
        // A resource refused for its own errors is refused for them; how its document reads
        // alone (without -n's namespace, say) adds nothing the user can act on.
        if refused { return nil }
        let alone = PolicyLoader.load(yaml: text, file: location.file)
        if alone.resources.count == 1, alone.resources.first?.id == id, !alone.hasErrors { return nil }
        return "\(location.file):\(location.line): error: \(id): \(what) does not read back on its own as this one resource (fix: \(fix))"
    }
}
