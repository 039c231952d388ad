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
    /// A `List` (`kubectl get ... -o yaml`) is read as its items. A resource whose metadata names
    /// no namespace is read into `defaultNamespace` (`apply -n`).
    public static func load(paths: [String], defaultNamespace: String = "default") -> LoadResult {
        var resources: [SecurityResource] = []
        var diagnostics: [Diagnostic] = []
        forEachDocument(paths: paths, &diagnostics) { file, document in
            let context = DecodeContext(file: file, defaultNamespace: defaultNamespace)
            if let resource = ResourceDecoder(context: context).decode(document) { resources.append(resource) }
            return context.diagnostics
        }
        return LoadResult(resources: resources, diagnostics: diagnostics)
    }

    /// The file name resources read back from the config store are loaded under.
    public static let configStore = "config store"

    /// A file's text as every command reads it: UTF-8 without a byte-order mark, with CRLF line
    /// ends made LF, so that a file saved on Windows splits into the same documents, on the same
    /// lines, for `analyze` and `apply`, and is stored with LF line ends. `nil` when the file
    /// cannot be read or is not UTF-8.
    public static func text(ofFile file: String) -> String? {
        guard let data = contents(ofFile: file) else { return nil }
        return text(of: data)
    }

    /// The bytes of a file; a pipe or device (`<(kubectl get ...)`, `/dev/stdin`) is read to its
    /// end. `nil` when it cannot be opened or read, or is a folder.
    ///
    /// A pipe is drained by its first read, and a command may read a path twice (`apply` loads the
    /// resources, then cuts each one's document out of the text): what a pipe held is kept for the
    /// rest of the process, so every read of the path gets the same bytes.
    static func contents(ofFile file: String) -> Data? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else { return nil }
        let attributes = try? FileManager.default.attributesOfItem(atPath: (file as NSString).resolvingSymlinksInPath)
        if attributes?[.type] as? FileAttributeType == .typeRegular {
            if let size = attributes?[.size] as? Int, size > maxInputBytes { return nil }
            return FileManager.default.contents(atPath: file)
        }
        return drained.withLock { read in
            if let kept = read[file] { return kept }
            // A pipe is read by one open: reading it a second way would find it drained.
            guard let handle = FileHandle(forReadingAtPath: file) else { return nil }
            defer { try? handle.close() }
            let (data, tooLarge) = bounded(handle)
            read[file] = data
            if tooLarge { overflowed.withLock { _ = $0.insert(file) } }
            return data
        }
    }

    /// The most bytes a policy file, pipe or standard input may hold: more than any set of
    /// policies needs, and a bound on what a device such as `/dev/zero` can make rampart hold.
    public static let maxInputBytes = 64 << 20

    /// What `handle` yields up to its end, or `nil` when that is more than `maxInputBytes`
    /// (`tooLarge`) or the read fails. With `failureIsEnd`, a read that fails ends the input
    /// instead (a closed standard input reads as empty).
    static func bounded(_ handle: FileHandle, failureIsEnd: Bool = false) -> (data: Data?, tooLarge: Bool) {
        var data = Data()
        while true {
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: 1 << 20)
            } catch {
                return (failureIsEnd ? data : nil, false)
            }
            // No data (nil or empty) is the end.
            guard let chunk, !chunk.isEmpty else { return (data, false) }
            data.append(chunk)
            if data.count > maxInputBytes { return (nil, true) }
        }
    }

    /// Whether `file` is a regular file past `maxInputBytes`, or a pipe or device that yielded
    /// more than that.
    static func isOversized(_ file: String) -> Bool {
        let attributes = try? FileManager.default.attributesOfItem(atPath: (file as NSString).resolvingSymlinksInPath)
        if attributes?[.type] as? FileAttributeType == .typeRegular {
            return (attributes?[.size] as? Int ?? 0) > maxInputBytes
        }
        return overflowed.withLock { $0.contains(file) }
    }

    /// What each pipe or device read so far held, by path (`nil`: too much, or unreadable).
    private static let drained = Mutex<[String: Data?]>([:])
    /// The pipes and devices that yielded more than `maxInputBytes`.
    private static let overflowed = Mutex<Set<String>>([])

    /// Why a file yields no text, as a message and a fix: it does not exist (or is a symbolic link
    /// to nothing), is a folder, cannot be opened or read, or is not UTF-8 (with the line of the
    /// first byte that is not).
    static func readProblem(_ file: String, what: String = "policy file") -> (line: Int, message: String, fix: String) {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: file, isDirectory: &isDirectory) else {
            if (try? manager.destinationOfSymbolicLink(atPath: file)) != nil {
                return (0, "the file is a symbolic link to nothing (its target is missing, or links loop)",
                        "point the link at a \(what), or remove it")
            }
            return (0, "no such file or folder", "pass an existing \(what)\(what == "policy file" ? " or folder" : "")")
        }
        if isDirectory.boolValue {
            return (0, "this is a folder, not a file", what == "policy file" ? "pass the folder itself, or a file inside it" : "give one \(what)")
        }
        guard manager.isReadableFile(atPath: file) else {
            return (0, "the file cannot be read (permission denied)", "give the user running rampart read access to it")
        }
        guard let data = contents(ofFile: file) else {
            if isOversized(file) {
                return (0, "the file holds more than \(maxInputBytes >> 20) MiB (or is a device that never ends, such as /dev/zero)",
                        "split the resources into several files, or pass the \(what) itself")
            }
            return (0, "the file cannot be read (an input/output error)", "pass a regular \(what)")
        }
        return (firstNonUTF8Line(data), "the file is not UTF-8 text", "save the file as UTF-8")
    }

    /// The line (from 1) holding the first byte that is not part of valid UTF-8.
    static func firstNonUTF8Line(_ data: Data) -> Int {
        var line = 1
        var iterator = data.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): if scalar == "\n" { line += 1 }
            case .emptyInput: return line
            case .error: return line
            }
        }
    }

    /// Bytes read as `text(ofFile:)` reads a file's.
    public static func text(of data: Data) -> String? {
        guard var text = String(data: data, encoding: .utf8) else { return nil }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        if text.contains("\r\n") { text = text.replacingOccurrences(of: "\r\n", with: "\n") }
        // A lone CR ends a line in YAML too (old Mac line ends).
        if text.contains("\r") { text = text.replacingOccurrences(of: "\r", with: "\n") }
        return text
    }

    /// Standard input as text (see `text(of:)`), read once and kept, so that every reading of
    /// `-` in one run sees the same documents; nil when it is not UTF-8.
    public static func standardInputText() -> String? {
        stdinText.withLock { cached in
            if let cached { return cached }
            // A closed standard input reads as empty, rather than trapping as readDataToEndOfFile
            // does; one past the bound is refused as if it were not text.
            let read = bounded(FileHandle.standardInput, failureIsEnd: true).data.flatMap { Self.text(of: $0) }
            cached = .some(read)
            return read
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
        paths: [String], _ diagnostics: inout [Diagnostic], _ body: (String, Node) -> [Diagnostic]
    ) {
        for file in expand(paths, diagnostics: &diagnostics) {
            if file == standardInput {
                guard let text = standardInputText() else {
                    diagnostics.append(
                        Diagnostic(
                            code: .unreadable, file: standardInputName, line: 0, resource: nil, field: "",
                            message: "standard input is not UTF-8 text, or holds more than \(maxInputBytes >> 20) MiB",
                            fix: "send the resources as UTF-8, split into several runs if they are that large"))
                    continue
                }
                forEachDocument(yaml: text, file: standardInputName, &diagnostics, body)
                continue
            }
            guard let text = text(ofFile: file) else {
                let problem = readProblem(file)
                diagnostics.append(
                    Diagnostic(
                        code: .unreadable, file: file, line: problem.line, resource: nil, field: "",
                        message: problem.message, fix: problem.fix))
                continue
            }
            forEachDocument(yaml: text, file: file, &diagnostics, body)
        }
    }

    /// `forEachDocument(paths:_:_:)` for one YAML string.
    private static func forEachDocument(
        yaml: String, file: String, _ diagnostics: inout [Diagnostic],
        _ body: (String, Node) -> [Diagnostic]
    ) {
        var documents: YamlSequence<Node>
        do {
            documents = try Yams.compose_all(yaml: yaml)
        } catch {
            diagnostics.append(unreadable(file, error))
            return
        }
        var index = -1
        while var document = documents.next() {
            index += 1
            if DecodeContext.isNull(document) { continue }
            let survey = YAMLExpansion.survey(document)
            if survey.exceeds {
                diagnostics.append(
                    Diagnostic(
                        code: .unreadable, file: file, line: DecodeContext.line(of: document), resource: nil, field: "",
                        message: "the document holds more than \(YAMLExpansion.valueLimit) values"
                            + " or \(YAMLExpansion.byteLimit / 1_048_576) MiB of text once any aliases (*name) in it expand"
                            + " (the Kubernetes API server takes no larger request, and a \"billion laughs\" document grows this way); it is not read",
                        fix: "split the resource into smaller ones, and write values out instead of repeating aliases of aliases"))
                continue
            }
            if index > 0, let borrowed = YAMLExpansion.earlierDocumentLine(in: document) {
                diagnostics.append(
                    Diagnostic(
                        code: .unreadable, file: file, line: DecodeContext.line(of: document), resource: nil, field: "",
                        message: "an alias (*name) in this document refers to an anchor of an earlier document (at line \(borrowed));"
                            + " an anchor reaches only within its own document, as kubectl reads each document alone",
                        fix: "define the anchor in this document, or write the value out"))
                continue
            }
            let tags = YAMLTags.problems(in: document)
            if !tags.isEmpty {
                diagnostics += tags.map { problem in
                    Diagnostic(
                        code: .unreadable, file: file, line: problem.line, resource: nil, field: "",
                        message: problem.message, fix: problem.fix)
                }
                continue
            }
            if survey.hasMerges { document = YAMLExpansion.resolvingMerges(document) }
            if let items = listItems(document) {
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
    static func listItems(_ document: Node) -> [Node]? {
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
                // kubectl fetches -f URLs; Rampart reads local files only, and says how to get there.
                let lower = path.lowercased()
                let url = lower.hasPrefix("http://") || lower.hasPrefix("https://")
                diagnostics.append(
                    Diagnostic(
                        code: .unreadable, file: path, line: 0, resource: nil, field: "",
                        message: url ? "a URL: policies are read from files, folders and standard input, not fetched" : "no such file or folder",
                        fix: url ? "download it first, or pipe it in and give - as the path (curl -fsSL '\(path)' | rampart apply -f -)" : "pass an existing policy file or folder"))
                continue
            }
            guard isDirectory.boolValue else {
                files.append(path)
                continue
            }
            var found: [String] = []
            var visited: Set<String> = []
            walk(path, relative: "", into: &found, visited: &visited, &diagnostics)
            files += found.sorted().map { (path as NSString).appendingPathComponent($0) }
        }
        // A file named twice (directly, through two spellings, or also inside a folder given) is
        // read once: its resources are not duplicates of themselves.
        var seen: Set<String> = []
        return files.filter { seen.insert($0 == standardInput ? $0 : canonical($0)).inserted }
    }

    /// Collects the policy files under `root/relative` (their paths relative to `root`), in every
    /// subfolder, hidden ones (`.git`) left out. A folder that cannot be read, or a policy file that
    /// is a symbolic link to nothing, is reported, so that no part of a batch is skipped unsaid; a
    /// folder reached again through a symbolic link is read once.
    private static func walk(
        _ root: String, relative: String, into files: inout [String], visited: inout Set<String>,
        _ diagnostics: inout [Diagnostic]
    ) {
        let manager = FileManager.default
        let folder = relative.isEmpty ? root : (root as NSString).appendingPathComponent(relative)
        guard visited.insert(canonical(folder)).inserted else { return }
        guard manager.isReadableFile(atPath: folder), let entries = try? manager.contentsOfDirectory(atPath: folder) else {
            diagnostics.append(
                Diagnostic(
                    code: .unreadable, file: folder, line: 0, resource: nil, field: "",
                    message: "the folder cannot be read (permission denied)",
                    fix: "give the user running rampart read and search access to it, or move the policies out of it"))
            return
        }
        for entry in entries.sorted() where !entry.hasPrefix(".") {
            let path = relative.isEmpty ? entry : (relative as NSString).appendingPathComponent(entry)
            let full = (root as NSString).appendingPathComponent(path)
            var isDirectory: ObjCBool = false
            let exists = manager.fileExists(atPath: full, isDirectory: &isDirectory)
            if exists && isDirectory.boolValue {
                walk(root, relative: path, into: &files, visited: &visited, &diagnostics)
            } else if Self.policyExtensions.contains(where: { entry.hasSuffix($0) }) {
                let type = (try? manager.attributesOfItem(atPath: (full as NSString).resolvingSymlinksInPath))?[.type] as? FileAttributeType
                if exists, let type, type != .typeRegular {
                    // A pipe would block the walk and a device never end; only given by name is one read.
                    diagnostics.append(
                        Diagnostic(
                            code: .unreadable, file: full, line: 0, resource: nil, field: "",
                            message: "not a regular file (a pipe, socket or device) inside a policy folder, so it is not read",
                            fix: "remove it from the folder, or pass it by name to read it"))
                    continue
                }
                files.append(path)  // a broken link is reported when it is read
            }
        }
    }

    /// The absolute, standardized form of a path, symbolic links resolved.
    private static func canonical(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: absolute).standardizedFileURL.resolvingSymlinksInPath().path
    }

    private static func unreadable(_ file: String, _ error: Error) -> Diagnostic {
        let problem = YAMLProblem(error)
        return Diagnostic(
            code: .unreadable, file: file, line: problem.line, resource: nil, field: "",
            message: "the YAML does not parse: \(problem.message)", fix: problem.fix)
    }
}
