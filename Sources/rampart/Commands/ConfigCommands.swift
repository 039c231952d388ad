import ArgumentParser
import Foundation
import RampartControlPlane
import RampartIdentity
import RampartPolicy
import RampartStore

/// `rampart apply`: validates Istio security resources and stores them in the config store, all or nothing.
struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Store AuthorizationPolicy, PeerAuthentication and RequestAuthentication resources in the control plane's config store.",
        discussion: """
            Every resource is validated first, as 'rampart analyze' does. One error anywhere refuses the whole batch: \
            nothing is stored, and each finding is printed with file:line, the resource, the field and the fix. \
            Warnings are printed but do not block. Otherwise the batch is stored in one transaction: each resource \
            is created, configured (its generation goes up when its spec changed) or unchanged, and the config version goes up by one \
            when anything changed. A running 'rampart ca serve' picks the change up within a second. With --dry-run \
            the same checks run and the outcomes are printed, but nothing is stored or audited. Each resource is \
            stored as its own YAML document, as written; the items of a List (what 'kubectl get -o yaml' and \
            'rampart get -o json' print) and documents that -n gives a namespace are stored rendered on their own.
            """
    )

    @Option(
        name: [.customShort("f", allowingJoined: true), .customLong("filename")], parsing: .upToNextOption,
        help: ArgumentHelp("YAML or JSON files or folders (every .yaml, .yml and .json file inside, recursively, hidden ones left out), or - for standard input; repeatable.", valueName: "path"))
    var filenames: [String] = []

    @Flag(name: [.customShort("R"), .long], help: "Accepted as kubectl takes it: folders are always read recursively.")
    var recursive = false

    @Option(
        name: [.customShort("n", allowingJoined: true), .customLong("namespace")],
        help: "The namespace of documents that name none (default: default); they are stored with it written in. A document naming another namespace is refused, as kubectl does.")
    var namespace: String?

    @Flag(
        help: "Validate and show what would be created, configured or unchanged, and store nothing (kubectl's --dry-run=client and --dry-run=server are read as this).")
    var dryRun = false

    @Option(help: "The mesh's root namespace, as 'ca serve --root-namespace' gives it: the warnings about mesh-wide policies are worked out against it.")
    var rootNamespace: String = "istio-system"

    @OptionGroup var stateOptions: StateOptions

    func validate() throws {
        guard !filenames.isEmpty else { throw ValidationError("give the resources to apply: -f FILE or -f FOLDER") }
        if let namespace { try OptionValues.checkNamespace(namespace, option: "-n") }
        try OptionValues.checkNamespace(rootNamespace, option: "--root-namespace")
    }

    /// The inputs compared with what is stored: a document that says the same as the stored one in
    /// other words (comments, key order, quoting, layout) is replaced by the stored text, so the
    /// resource is unchanged, as kubectl reports it, and neither its generation nor the config
    /// version moves; a document that changes only metadata (labels, annotations) says so, so the
    /// resource is configured and keeps its generation, as a Kubernetes API server keeps it.
    static func comparedWithStored(_ inputs: [ConfigResourceInput], store: any ConfigStore) async throws
        -> [ConfigResourceInput]
    {
        var compared: [ConfigResourceInput] = []
        for input in inputs {
            guard let stored = try await store.configResource(input.key), stored.yaml != input.yaml else {
                compared.append(input)
                continue
            }
            let key = input.key
            if YAMLDocuments.sameContent(stored.yaml, input.yaml) {
                compared.append(ConfigResourceInput(kind: key.kind, namespace: key.namespace, name: key.name, yaml: stored.yaml))
            } else if YAMLDocuments.sameSpec(stored.yaml, input.yaml) {
                compared.append(
                    ConfigResourceInput(
                        kind: key.kind, namespace: key.namespace, name: key.name, yaml: input.yaml, specSameAs: stored.yaml))
            } else {
                compared.append(input)
            }
        }
        return compared
    }

    func run() async throws {
        // A dry run only reads: it works for a user who may read the store but not write it.
        let state = StateDirectory(stateOptions.state)
        let store = dryRun ? try state.openStore(.readOnly) : try await state.openStoreForWriting()
        let stdin = try filenames.contains("-") ? Self.stageStandardInput() : nil
        defer { if let stdin { try? FileManager.default.removeItem(atPath: (stdin as NSString).deletingLastPathComponent) } }
        let batch = ConfigBatch.load(paths: filenames.map { $0 == "-" ? stdin ?? $0 : $0 }, namespace: namespace, rootNamespace: rootNamespace)
        var diagnostics = batch.diagnostics
        // A RequestAuthentication whose tokens a stored AuthorizationPolicy requires is backed.
        if diagnostics.contains(where: { $0.code == .tokenNotRequired }) {
            let stored = try await store.configResources(kind: ResourceKind.authorizationPolicy.rawValue, namespace: nil)
                .flatMap { PolicyLoader.load(yaml: $0.yaml, file: PolicyLoader.configStore).resources }
            let unbacked = PolicyAnalyzer.unbackedRequestAuthentications(batch.resources + stored, rootNamespace: rootNamespace)
            diagnostics.removeAll { $0.code == .tokenNotRequired && !($0.resource.map(unbacked.contains) ?? false) }
        }
        var findings = diagnostics.map(\.description) + batch.problems
        if let stdin { findings = findings.map { $0.replacingOccurrences(of: stdin, with: "<stdin>") } }
        if !findings.isEmpty { ConfigOutput.stderr(findings.joined(separator: "\n")) }
        let sources = filenames.map { $0 == "-" ? "<stdin>" : $0 }.joined(separator: ", ")
        guard batch.errorCount == 0 else {
            let count = batch.errorCount
            // The files can be analyzed again as they are; standard input cannot be read twice,
            // and analyze has no -n.
            let hint =
                stdin == nil && namespace == nil
                ? " ('rampart analyze \(filenames.joined(separator: " "))' shows the same findings)" : ""
            ConfigOutput.stderr(
                "error: \(count) error\(count == 1 ? "" : "s") in \(sources): nothing was stored. Fix \(count == 1 ? "it" : "them") and apply again\(hint)"
            )
            throw ExitCode.failure
        }
        guard !batch.inputs.isEmpty else {
            ConfigOutput.stderr("error: no AuthorizationPolicy, PeerAuthentication or RequestAuthentication found in \(sources): nothing was stored. Check the paths (folders are searched for .yaml, .yml and .json files)")
            throw ExitCode.failure
        }
        // What only shows with the store's contents: a PeerAuthentication competing with a stored one.
        // Each is dated as the store dates it: a stored one by its creation, one the batch adds now;
        // where PeerAuthentications compete, the one created first wins.
        let storedPeers = try await store.configResources(kind: ResourceKind.peerAuthentication.rawValue, namespace: nil)
        let stored = storedPeers.flatMap { record in
            PolicyLoader.load(yaml: record.yaml, file: PolicyLoader.configStore).resources.map { $0.created(at: record.createdAt) }
        }
        let created = Dictionary(stored.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let now = Date()
        let incoming = batch.resources.map { resource in
            created[resource.id].map { resource.created(at: $0.createdAt ?? now) } ?? resource.created(at: now)
        }
        let conflicts = PolicyAnalyzer.conflicts(adding: incoming, to: stored)
        if !conflicts.isEmpty {
            let text = conflicts.map(\.description).joined(separator: "\n")
            ConfigOutput.stderr(stdin.map { text.replacingOccurrences(of: $0, with: "<stdin>") } ?? text)
        }
        let result: ConfigApplyResult
        do {
            let inputs = try await Self.comparedWithStored(batch.inputs, store: store)
            result =
                dryRun
                ? try await store.previewConfig(inputs, at: Date(), actor: Operator.actor)
                : try await store.applyConfig(inputs, at: Date(), actor: Operator.actor)
        } catch let error as StoreError {
            ConfigOutput.stderr("error: \(error.reason)")
            throw ExitCode.failure
        }
        let marker = dryRun ? " (dry run)" : ""
        for outcome in result.outcomes {
            print("\(ConfigOutput.qualified(outcome.key)) \(outcome.change.rawValue)\(marker)")
        }
        if dryRun {
            print(
                result.changedAnything
                    ? "config version would be \(result.version) (dry run: nothing was stored)"
                    : "config version \(result.version) (dry run: nothing would change)")
        } else {
            print("config version \(result.version)\(result.changedAnything ? "" : " (nothing changed)")")
        }
    }
}

extension Apply {
    /// Copies standard input (`-f -`) into a private temporary file, so it is read like any other file.
    static func stageStandardInput() throws -> String {
        // A closed standard input reads as empty, rather than trapping as readDataToEndOfFile does.
        let data = ((try? FileHandle.standardInput.readToEnd()) ?? nil) ?? Data()
        guard !data.isEmpty else {
            throw ValidationError("-f - reads resources from standard input, but standard input was empty or closed: pipe the YAML in, or give -f FILE")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-apply-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let file = directory.appendingPathComponent("stdin.yaml").path
        guard FileManager.default.createFile(atPath: file, contents: data) else {
            throw ValidationError("cannot stage standard input in \(directory.path): check that the temporary directory is writable")
        }
        return file
    }
}

/// `rampart get`: lists stored resources as a table, JSON, YAML or names.
struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "List resources in the control plane's config store.",
        discussion: """
            KIND is AuthorizationPolicy (authorizationpolicies, ap), PeerAuthentication (peerauthentications, pa) or \
            RequestAuthentication (requestauthentications, ra), in any case, optionally with .security.istio.io or \
            .v1.security.istio.io; the categories istio-io and security-istio-io name all three. As with kubectl, resources are named KIND (all of that kind), KIND,KIND, KIND NAME... or \
            KIND/NAME... (as '-o name' prints them), and the namespace is 'default' unless -n or -A says \
            otherwise; a name not found is an error, printed after what was found. The table shows NAMESPACE \
            with -A, and ACTION or MODE as Istio's CRDs do. '-o yaml' prints each resource's YAML document \
            as it was applied, comments included, with the store's creationTimestamp (replacing one the \
            document gave) and generation written into its metadata, as kubectl prints them (a document applied as \
            JSON is printed as YAML, and one that named no namespace gets it written in).
            """
    )

    /// The output formats of `-o`; `records` is what `--json` prints.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json, yaml, name
        case records

        static var allValueStrings: [String] { ["table", "json", "yaml", "name"] }
    }

    @Argument(
        help: ArgumentHelp(
            "KIND (every resource of it), KIND,KIND, KIND NAME..., or KIND/NAME... as '-o name' prints them. KIND is AuthorizationPolicy (ap), PeerAuthentication (pa) or RequestAuthentication (ra).",
            valueName: "resources"))
    var resources: [String] = []

    @Option(name: [.customShort("n", allowingJoined: true), .customLong("namespace")], help: "The namespace (default: default).")
    var namespace: String?

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "List every namespace (over -n, as kubectl).")
    var allNamespaces = false

    @Flag(help: "Print a JSON array of the stored records: kind, api_group, namespace, name, generation, created_at, updated_at and the YAML as applied.")
    var json = false

    @Option(
        name: [.customShort("o", allowingJoined: true), .customLong("output")],
        help: "Output format: table, json (the resource as kubectl prints it, or a List of them), yaml or name.")
    var output: Format = .table

    @OptionGroup var stateOptions: StateOptions

    func validate() throws {
        if let namespace { try OptionValues.checkNamespace(namespace, option: "-n") }
        let selection = try ConfigKind.selection(resources)
        if allNamespaces && selection.names != nil {
            throw ValidationError("a resource name needs one namespace: use -n NAMESPACE instead of -A")
        }
    }

    func run() async throws {
        let selection = try ConfigKind.selection(resources)
        let store = try StateDirectory(stateOptions.state).openStore(.readOnly)
        let scope = allNamespaces ? nil : (namespace ?? "default")
        // Each kind's records, in the order the kinds (and names) were given; kubectl prints what
        // it found and reports each name it did not find.
        var sections: [(kind: ResourceKind, records: [ConfigResourceRecord])] = []
        var missing: [String] = []
        for kind in selection.kinds {
            let stored = try await store.configResources(kind: kind.rawValue, namespace: scope)
            guard let names = selection.names(of: kind) else {
                sections.append((kind, stored))
                continue
            }
            var found: [ConfigResourceRecord] = []
            for name in names {
                if let record = stored.first(where: { $0.name == name }) {
                    found.append(record)
                } else {
                    missing.append(
                        "error: \(ConfigKind.qualified(kind)) \(scope ?? "default")/\(name) not found in the config store at \(stateOptions.state); list what is stored with 'rampart get \(ConfigKind.shortName(kind)) -A --state \(stateOptions.state)'")
                }
            }
            sections.append((kind, found))
        }
        defer { if !missing.isEmpty { ConfigOutput.stderr(missing.joined(separator: "\n")) } }
        let records = sections.flatMap(\.records)
        if json && output != .table { throw ValidationError("give --json or -o \(output.rawValue), not both") }
        let format: Format = json ? .records : output
        // An empty listing in JSON or YAML is an empty List, as kubectl prints it.
        if records.isEmpty && format == .yaml && selection.names == nil {
            print("apiVersion: v1\nitems: []\nkind: List\nmetadata: {}")
            return
        }
        if records.isEmpty && format != .records && !(format == .json && selection.names == nil) {
            if missing.isEmpty {
                ConfigOutput.stderr(scope.map { "No resources found in \($0) namespace." } ?? "No resources found.")
                return
            }
            throw ExitCode.failure
        }
        switch format {
        case .table:
            // With several kinds, one table each, names written KIND/NAME as kubectl writes them.
            let tables = sections.filter { !$0.records.isEmpty }.map { section in
                ConfigOutput.table(
                    section.records, now: Date(), kind: sections.count > 1 ? section.kind : nil, namespaces: scope == nil)
            }
            print(tables.joined(separator: "\n"), terminator: "")
        case .records: print(try JSONText.render(records.map(ConfigOutput.json)))
        case .json:
            // One named resource is printed as itself; a listing as a List, as kubectl does.
            let objects = records.map(ConfigOutput.object)
            if selection.names != nil && objects.count == 1 && missing.isEmpty {
                print(try JSONText.render(objects[0]))
            } else {
                print(try JSONText.render(["apiVersion": "v1", "kind": "List", "items": objects, "metadata": [String: Any]()]))
            }
        case .yaml:
            // A document stored with its own marker (`--- {...}`) needs no second one.
            let documents = records.enumerated().map { index, record in
                let yaml = StandaloneDocuments.withStoreFields(
                    StandaloneDocuments.withNamespace(record.yaml, namespace: record.namespace),
                    creationTimestamp: ISO8601DateFormatter().string(from: record.createdAt), generation: Int(record.generation))
                return index == 0 || yaml.hasPrefix("---") ? yaml : "---\n" + yaml
            }
            print(documents.joined(), terminator: "")
        case .name:
            for section in sections {
                for record in section.records { print("\(ConfigKind.qualified(section.kind))/\(record.name)") }
            }
        }
        if !missing.isEmpty { throw ExitCode.failure }
    }
}

/// `rampart delete`: removes one stored resource.
struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete resources from the control plane's config store, by kind and name or as named in files.",
        discussion: """
            KIND takes the same spellings as 'rampart get'. With -f, every resource the files define (by kind, \
            namespace and name; their specs are not checked) is deleted in one transaction. The config version goes \
            up by one for the deletion, and each deleted resource is audited. A resource that is not stored is an \
            error, unless --ignore-not-found is given; the others are deleted all the same.
            """
    )

    @Argument(
        help: ArgumentHelp(
            "KIND NAME..., or KIND/NAME... as 'get -o name' prints them. KIND is AuthorizationPolicy (ap), PeerAuthentication (pa) or RequestAuthentication (ra).",
            valueName: "resources"))
    var resources: [String] = []

    @Option(
        name: [.customShort("n", allowingJoined: true), .customLong("namespace")],
        help: "The namespace (default: default). With -f, the namespace of documents that name none; a document naming another is refused, as kubectl does.")
    var namespace: String?

    @Option(
        name: [.customShort("f", allowingJoined: true), .customLong("filename")], parsing: .upToNextOption,
        help: ArgumentHelp("YAML files or folders naming the resources to delete, or - for standard input; repeatable.", valueName: "path"))
    var filenames: [String] = []

    @Flag(name: [.customShort("R"), .long], help: "Accepted as kubectl takes it: folders are always read recursively.")
    var recursive = false

    @Flag(help: "Do not treat a resource that is not stored as an error.")
    var ignoreNotFound = false

    @Flag(help: "Delete every stored resource of the KIND(s) in the namespace (-n, default: default), as kubectl delete --all.")
    var all = false

    @OptionGroup var stateOptions: StateOptions

    func validate() throws {
        if let namespace { try OptionValues.checkNamespace(namespace, option: "-n") }
        if all {
            guard filenames.isEmpty, resources.count == 1, !resources[0].contains("/") else {
                throw ValidationError("--all takes the kind alone: rampart delete KIND[,KIND] --all [-n NAMESPACE]")
            }
            _ = try ConfigKind.selection(resources)
            return
        }
        if filenames.isEmpty {
            guard !resources.isEmpty, try ConfigKind.selection(resources).names != nil else {
                throw ValidationError("say what to delete: KIND NAME... or KIND/NAME... [-n NAMESPACE], or -f FILE to delete what a file defines")
            }
        } else if !resources.isEmpty {
            throw ValidationError("give either KIND NAME... or -f FILE, not both")
        }
        // -f takes every value up to the next option: a KIND/NAME after it would be read as a file.
        for name in filenames where !FileManager.default.fileExists(atPath: name) {
            if name.contains("/"), (try? ConfigKind.selection([name]))?.names != nil {
                throw ValidationError("\(name) follows -f, so it is read as a file: give either KIND/NAME... or -f FILE, not both")
            }
        }
    }

    func run() async throws {
        let store = try await StateDirectory(stateOptions.state).openStoreForWriting()
        let keys: [ConfigResourceKey]
        if all {
            var every: [ConfigResourceKey] = []
            for kind in try ConfigKind.selection(resources).kinds {
                every += try await store.configResources(kind: kind.rawValue, namespace: namespace ?? "default").map(\.key)
            }
            guard !every.isEmpty else {
                print("No resources found in \(namespace ?? "default") namespace.")
                return
            }
            keys = every
        } else if filenames.isEmpty {
            let named = try ConfigKind.selection(resources).names ?? []
            keys = named.map { ConfigResourceKey(kind: $0.kind.rawValue, namespace: namespace ?? "default", name: $0.name) }
        } else {
            keys = try Self.keys(in: filenames, namespace: namespace)
        }
        let result: ConfigBatchDeletion
        do {
            result = try await store.deleteConfig(keys, at: Date(), actor: Operator.actor)
        } catch let error as StoreError {
            ConfigOutput.stderr("error: \(error.reason)")
            throw ExitCode.failure
        }
        for record in result.deleted { print("\(ConfigOutput.qualified(record.key)) deleted") }
        if !result.deleted.isEmpty { print("config version \(result.version)") }
        guard !result.missing.isEmpty, !ignoreNotFound else { return }
        for key in result.missing {
            ConfigOutput.stderr(
                "error: \(ConfigOutput.qualified(key)) not found in the config store at \(stateOptions.state); nothing to delete. List what is stored with 'rampart get \(ResourceKind(rawValue: key.kind).map(ConfigKind.shortName) ?? key.kind) -n \(key.namespace) --state \(stateOptions.state)' (or -A for every namespace)"
            )
        }
        throw ExitCode.failure
    }

    /// The resources the files define, a document without a namespace taking `namespace` (or
    /// `default`); a file that cannot be read, a document without a kind and name, or one naming
    /// a namespace other than `namespace` refuses the deletion.
    static func keys(in paths: [String], namespace: String?) throws -> [ConfigResourceKey] {
        let loaded = PolicyLoader.identities(paths: paths)
        let errors = loaded.diagnostics.filter { $0.severity == .error }
        guard errors.isEmpty else {
            ConfigOutput.stderr(errors.map(\.description).joined(separator: "\n"))
            let sources = paths.joined(separator: ", ")
            ConfigOutput.stderr(
                "error: \(errors.count) error\(errors.count == 1 ? "" : "s") reading \(sources): nothing was deleted. Fix the files, or delete by name: rampart delete KIND NAME -n NAMESPACE")
            throw ExitCode.failure
        }
        guard !loaded.ids.isEmpty else {
            ConfigOutput.stderr(
                "error: no AuthorizationPolicy, PeerAuthentication or RequestAuthentication found in \(paths.joined(separator: ", ")): nothing was deleted. Check the paths (folders are searched for .yaml, .yml and .json files)")
            throw ExitCode.failure
        }
        var keys: [ConfigResourceKey] = []
        var mismatched: [String] = []
        for (id, given) in zip(loaded.ids, loaded.namespaceGiven) {
            let resolved = given ? id.namespace : namespace ?? "default"
            if given, let namespace, namespace != id.namespace {
                mismatched.append(
                    "error: \(ConfigKind.qualified(id.kind)) \(id.namespace)/\(id.name) is in namespace \(id.namespace), not \(namespace) as -n says")
            }
            keys.append(ConfigResourceKey(kind: id.kind.rawValue, namespace: resolved, name: id.name))
        }
        guard mismatched.isEmpty else {
            ConfigOutput.stderr(mismatched.joined(separator: "\n"))
            ConfigOutput.stderr(
                "error: nothing was deleted: drop -n to delete each resource in the namespace its document names, or give the namespace the documents name")
            throw ExitCode.failure
        }
        return keys
    }
}
