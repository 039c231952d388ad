import ArgumentParser
import Foundation
import RampartPolicy

/// `rampart analyze`: validates Istio security resources the way Istio's webhook does, and warns
/// about policies that will not do what they seem to mean.
struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Validate AuthorizationPolicy, PeerAuthentication and RequestAuthentication YAML and warn about policies that cannot match as intended.",
        discussion: """
            Every finding has a code (RPnnn), a severity, file:line, the resource, the field path, what was wrong and how \
            to fix it. The exit status is 1 when there is at least one error, 0 otherwise (warnings alone do not fail).
            """
    )

    @Argument(help: ArgumentHelp("YAML or JSON files or folders (every .yaml, .yml and .json file inside, recursively, hidden ones left out), or - for standard input.", valueName: "path"))
    var paths: [String]

    @Option(help: ArgumentHelp("A YAML/JSON list of known workloads ([{namespace, labels, name, ports}]): selectors that match none of them, and TCP ports no ALLOW rule can reach, are reported.", valueName: "file"))
    var workloads: String?

    @Option(help: "The mesh's root namespace, whose policies apply mesh-wide.")
    var rootNamespace: String = "istio-system"

    @Flag(help: "Print one JSON object: {\"errors\": N, \"warnings\": N, \"diagnostics\": [...]}.")
    var json = false

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one YAML file or folder to analyze") }
        try OptionValues.checkNamespace(rootNamespace, option: "--root-namespace")
        if paths.filter({ $0 == PolicyLoader.standardInput }).count > 1 {
            throw ValidationError("standard input can be read once: give - once")
        }
    }

    func run() throws {
        var known: [Workload]?
        if let workloads {
            do {
                known = try Workload.list(file: workloads)
            } catch {
                throw ValidationError("--workloads \(error.place(workloads)): \(error)")
            }
        }
        let diagnostics = PolicyEngine.analyze(paths: paths, workloads: known, rootNamespace: rootNamespace)
        if diagnostics.isEmpty && PolicyLoader.load(paths: paths).resources.isEmpty {
            StandardError.write(Data((PolicyLoader.nothingFoundWarning(paths) + "\n").utf8))
        }
        let errors = diagnostics.filter { $0.severity == .error }.count
        let warnings = diagnostics.count - errors
        if json {
            let object: [String: Any] = ["errors": errors, "warnings": warnings, "diagnostics": PolicyEngine.renderJSON(diagnostics)]
            print(try JSONText.render(object))
        } else {
            if !diagnostics.isEmpty { print(PolicyEngine.renderHuman(diagnostics)) }
            print("\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s") in \(PolicyLoader.displayNames(paths))")
        }
        if errors > 0 { throw ExitCode(1) }
    }
}

/// Renders JSON-compatible values with sorted keys.
enum JSONText {
    static func render(_ object: Any) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
