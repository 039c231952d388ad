import Foundation
import Synchronization
import Yams

/// What loading produced: the resources that decoded and every diagnostic found on the way.
public struct LoadResult: Sendable {
    /// The resources in load order (files sorted by path, documents in file order).
    public let resources: [SecurityResource]
    /// Schema errors (unknown fields, wrong types, unknown kinds, unreadable files).
    public let diagnostics: [Diagnostic]

    /// Creates a result.
    public init(resources: [SecurityResource], diagnostics: [Diagnostic]) {
        self.resources = resources
        self.diagnostics = diagnostics
    }

    /// Whether any diagnostic is an error.
    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
}

/// Reads Istio security resources from YAML text, files and folders with Yams' node API.
public enum PolicyLoader {
    /// The warning for paths that hold no security resource at all: every request is then
    /// decided without policies, which is rarely what was meant.
    public static func nothingFoundWarning(_ paths: [String]) -> String {
        "warning: no AuthorizationPolicy, PeerAuthentication or RequestAuthentication found in "
            + displayNames(paths)
            + " (folders are searched for files ending in .yaml, .yml or .json); check the paths and the files' extensions"
    }

    /// Paths as findings name them, standard input as `<stdin>`.
    public static func displayNames(_ paths: [String]) -> String {
        paths.map { $0 == standardInput ? standardInputName : $0 }.joined(separator: ", ")
    }

    /// Decodes every document of a multi-document YAML string.
    public static func load(yaml: String, file: String = "<input>") -> LoadResult {
        var resources: [SecurityResource] = []
        var diagnostics: [Diagnostic] = []
        forEachDocument(yaml: yaml, file: file, &diagnostics) { file, document in
            let context = DecodeContext(file: file)
            if let resource = ResourceDecoder(context: context).decode(document) { resources.append(resource) }
            return context.diagnostics
        }
        return LoadResult(resources: resources, diagnostics: diagnostics)
    }

    /// The kind, namespace and name of every resource in files and folders, read as `load` reads
    /// them but without their specs: for deleting what files define, whatever their specs say.
    public static func identities(paths: [String]) -> (ids: [ResourceID], namespaceGiven: [Bool], diagnostics: [Diagnostic]) {
        var ids: [ResourceID] = []
        var given: [Bool] = []
        var diagnostics: [Diagnostic] = []
        forEachDocument(paths: paths, &diagnostics) { file, document in
            let context = DecodeContext(file: file)
            let found = ResourceDecoder(context: context).identify(document)
            // Only the document's header was read, so these are about its kind or metadata.
            if let found, !context.diagnostics.contains(where: { $0.severity == .error }) {
                ids.append(found.id)
                given.append(found.namespaceGiven)
            }
            return context.diagnostics
        }
        return (ids, given, diagnostics)
    }

    /// Loads files and folders (recursively, `*.yaml`, `*.yml`, `*.json`, hidden ones left out), in sorted path order.
    /// A `List` (`kubectl get ... -o yaml`) is read as its items, unless `expandingLists` is false
    /// (for `apply`, which stores each resource as a document of its own).
    public static func load(paths: [String], expandingLists: Bool = true) -> LoadResult {
        var resources: [SecurityResource] = []
        var diagnostics: [Diagnostic] = []
        forEachDocument(paths: paths, expandingLists: expandingLists, &diagnostics) { file, document in
            let context = DecodeContext(file: file)
            if let resource = ResourceDecoder(context: context).decode(document) { resources.append(resource) }
            return context.diagnostics
        }
        return LoadResult(resources: resources, diagnostics: diagnostics)
    }

    /// A file's text as every command reads it: UTF-8 without a byte-order mark, with CRLF line
    /// ends made LF, so that a file saved on Windows splits into the same documents, on the same
    /// lines, for `analyze` and `apply`, and is stored with LF line ends. `nil` when the file
    /// cannot be read or is not UTF-8.
    public static func text(ofFile file: String) -> String? {
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        return text(of: data)
    }

    /// Bytes read as `text(ofFile:)` reads a file's.
    public static func text(of data: Data) -> String? {
        guard var text = String(data: data, encoding: .utf8) else { return nil }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        if text.contains("\r\n") { text = text.replacingOccurrences(of: "\r\n", with: "\n") }
        return text
    }

    /// Standard input as text (see `text(of:)`), read once and kept, so that every reading of
    /// `-` in one run sees the same documents; nil when it is not UTF-8.
    public static func standardInputText() -> String? {
        stdinText.withLock { cached in
            if let cached { return cached }
            let text = text(of: FileHandle.standardInput.readDataToEndOfFile())
            cached = .some(text)
            return text
        }
    }

    private static let stdinText = Mutex<String??>(nil)

    /// The path that stands for standard input, as with kubectl's `-f -`.
    public static let standardInput = "-"
    /// How standard input is named in findings.
    public static let standardInputName = "<stdin>"

    /// Calls `body` with each document of the files and folders that is not empty, adding what
    /// it reports to `diagnostics`; a file that cannot be read or parsed is reported there.
    private static func forEachDocument(
        paths: [String], expandingLists: Bool = true, _ diagnostics: inout [Diagnostic], _ body: (String, Node) -> [Diagnostic]
    ) {
        for file in expand(paths, diagnostics: &diagnostics) {
            if file == standardInput {
                guard let text = standardInputText() else {
                    diagnostics.append(
                        Diagnostic(
                            code: .unreadable, file: standardInputName, line: 0, resource: nil, field: "",
                            message: "standard input is not UTF-8 text", fix: "send the resources as UTF-8"))
                    continue
                }
                forEachDocument(yaml: text, file: standardInputName, expandingLists: expandingLists, &diagnostics, body)
                continue
            }
            guard let text = text(ofFile: file) else {
                let readable = FileManager.default.isReadableFile(atPath: file)
                diagnostics.append(
                    Diagnostic(
                        code: .unreadable, file: file, line: 0, resource: nil, field: "",
                        message: readable ? "the file is not UTF-8 text" : "the file cannot be read (permission denied)",
                        fix: readable ? "save the file as UTF-8" : "give the user running rampart read access to it"))
                continue
            }
            forEachDocument(yaml: text, file: file, expandingLists: expandingLists, &diagnostics, body)
        }
    }

    /// `forEachDocument(paths:_:_:)` for one YAML string.
    private static func forEachDocument(
        yaml: String, file: String, expandingLists: Bool = true, _ diagnostics: inout [Diagnostic],
        _ body: (String, Node) -> [Diagnostic]
    ) {
        var documents: YamlSequence<Node>
        do {
            documents = try Yams.compose_all(yaml: yaml)
        } catch {
            diagnostics.append(unreadable(file, error))
            return
        }
        while let document = documents.next() {
            if DecodeContext.isNull(document) { continue }
            if expandingLists, let items = listItems(document) {
                for item in items where !DecodeContext.isNull(item) { diagnostics += body(file, item) }
                continue
            }
            diagnostics += body(file, document)
        }
        if let error = documents.error { diagnostics.append(unreadable(file, error)) }
    }

    /// The items of a Kubernetes list (`kind: List`, or `AuthorizationPolicyList` and the like, with
    /// an `items` sequence), as `kubectl get ... -o yaml` prints several resources; nil for any
    /// other document.
    private static func listItems(_ document: Node) -> [Node]? {
        guard let mapping = document.mapping, let kind = mapping["kind"]?.string, kind.hasSuffix("List"),
            case .sequence(let items)? = mapping["items"]
        else { return nil }
        return Array(items)
    }

    /// The files a folder is searched for, as kubectl searches one.
    public static let policyExtensions = [".yaml", ".yml", ".json"]

    private static func expand(_ paths: [String], diagnostics: inout [Diagnostic]) -> [String] {
        var files: [String] = []
        let manager = FileManager.default
        for path in paths {
            if path == standardInput {
                files.append(path)
                continue
            }
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
                diagnostics.append(
                    Diagnostic(
                        code: .unreadable, file: path, line: 0, resource: nil, field: "",
                        message: "no such file or folder", fix: "pass an existing policy file or folder"))
                continue
            }
            guard isDirectory.boolValue else {
                files.append(path)
                continue
            }
            guard manager.isReadableFile(atPath: path), let entries = manager.enumerator(atPath: path)?.allObjects as? [String]
            else {
                diagnostics.append(
                    Diagnostic(
                        code: .unreadable, file: path, line: 0, resource: nil, field: "",
                        message: "the folder cannot be read (permission denied)",
                        fix: "give the user running rampart read access to it"))
                continue
            }
            // Hidden files and folders (.git, .github) hold no policies of the folder's.
            files += entries.filter { entry in
                Self.policyExtensions.contains { entry.hasSuffix($0) }
                    && !entry.split(separator: "/").contains { $0.hasPrefix(".") }
            }.sorted().map { (path as NSString).appendingPathComponent($0) }
        }
        // A file named twice (directly, through two spellings, or also inside a folder given) is
        // read once: its resources are not duplicates of themselves.
        var seen: Set<String> = []
        return files.filter { seen.insert($0 == standardInput ? $0 : canonical($0)).inserted }
    }

    /// The absolute, standardized form of a path, symbolic links resolved.
    private static func canonical(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: absolute).standardizedFileURL.resolvingSymlinksInPath().path
    }

    private static func unreadable(_ file: String, _ error: Error) -> Diagnostic {
        if let yamlError = error as? YamlError {
            switch yamlError {
            case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
                // Said in words with the position, without echoing the line, which can be very long.
                let within = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
                return Diagnostic(
                    code: .unreadable, file: file, line: mark.line, resource: nil, field: "",
                    message: "the YAML does not parse: \(problem) at line \(mark.line), column \(mark.column)\(within)",
                    fix: "correct the YAML syntax at this line")
            case .duplicatedKeysInMapping(let duplicates, let context):
                let first = context.mark.line
                let key = duplicates.first ?? ""
                let again = repeatedKeyLine(key, after: context.mark, in: context.text)
                let names = duplicates.map { "\"\($0)\"" }.joined(separator: ", ")
                return Diagnostic(
                    code: .unreadable, file: file, line: again ?? first, resource: nil, field: "",
                    message: "the YAML does not parse: \(names) appears more than once in one mapping (first at line \(first))",
                    fix: "keep one \(key) in that mapping")
            default: break
            }
        }
        var text = "\(error)"
        if text.count > 300 { text = String(text.prefix(300)) + "…" }
        return Diagnostic(
            code: .unreadable, file: file, line: 0, resource: nil, field: "",
            message: "the YAML does not parse: \(text)", fix: "correct the YAML syntax")
    }

    /// The line of the next `key:` at the same column as the first one, after it.
    private static func repeatedKeyLine(_ key: String, after mark: Mark, in text: String) -> Int? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard mark.line >= 1, mark.line < lines.count else { return nil }
        let indent = String(repeating: " ", count: max(mark.column - 1, 0))
        for index in mark.line..<lines.count {
            let line = lines[index]
            if line.hasPrefix(indent + key + ":") || line.hasPrefix(indent + "\"" + key + "\":") { return index + 1 }
        }
        return nil
    }
}
