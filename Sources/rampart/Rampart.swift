import ArgumentParser
import Foundation
import Logging
import RampartIdentity
import RampartProxy
import RampartStore

/// The `rampart` command: a service mesh's security system.
@main
struct Rampart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rampart",
        abstract: "A service mesh's security system: certificate authority, agents, policies and proxies.",
        version: "rampart 0.1 (\(ProxyVersion.current))",
        subcommands: [CA.self, Agent.self, Proxy.self, Token.self, Cert.self, Audit.self, Analyze.self, Authz.self, Apply.self, Get.self, Delete.self, Status.self, Bench.self]
    )

    /// Parses and runs the command. Bad input a command finds while running (a file that cannot
    /// be read, policies that do not load), which it throws as a `ValidationError`, is printed
    /// without a usage text: the usage at hand would be the top command's, and says nothing about
    /// the mistake. Errors found while parsing keep the usage of the command given.
    static func main() async {
        if let complaint = HelpTopics.unknownTopic(Array(CommandLine.arguments.dropFirst())) {
            StandardError.write(Data("Error: \(complaint)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        do {
            var command = try parseAsRoot(try KubectlForms.normalized(Array(CommandLine.arguments.dropFirst())))
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
            // What print() buffered must reach standard output: a full disk or a closed pipe is a
            // failure, not a success with the output lost.
            if let code = StandardOutputState.failure() {
                StandardError.write(Data("Error: the output could not be written to standard output (\(String(cString: strerror(code)))); it is incomplete\n".utf8))
                Foundation.exit(ExitCode.failure.rawValue)
            }
        } catch let error as ValidationError {
            StandardError.write(Data("Error: \(error.message)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        } catch let failure as CommandFailure {
            StandardError.write(Data("Error: \(failure.message)\n".utf8))
            Foundation.exit(ExitCode.failure.rawValue)
        } catch {
            // SQLite finding the store damaged part-way through a command: say so in words.
            if let damage = StoreError.damage(error) {
                StandardError.write(Data("Error: \(damage.reason)\n".utf8))
                Foundation.exit(ExitCode.failure.rawValue)
            }
            exit(withError: error)
        }
    }
}

/// kubectl's spellings of options the config commands take in their own form.
enum KubectlForms {
    /// The arguments with `apply`'s `--dry-run=client` and `--dry-run=server` read as `--dry-run`
    /// (Rampart's dry run validates against the stored resources, as the server's does), and
    /// `--dry-run=none` as no dry run.
    static func normalized(_ arguments: [String]) throws -> [String] {
        guard arguments.first == "apply" else { return arguments }
        return try arguments.compactMap { argument in
            guard argument.hasPrefix("--dry-run=") else { return argument }
            switch argument.dropFirst("--dry-run=".count) {
            case "client", "server": return "--dry-run"
            case "none": return nil
            case let value:
                throw ValidationError("--dry-run=\(value): use --dry-run, or kubectl's --dry-run=client, --dry-run=server or --dry-run=none")
            }
        }
    }
}

/// `rampart help TOPIC...` for a topic that is no command: the argument parser would print the
/// nearest command's help and exit 0, as if the topic existed.
enum HelpTopics {
    /// What is wrong with a `help` invocation's topics, or `nil` when they name a command (or the
    /// arguments are no `help` invocation).
    static func unknownTopic(_ arguments: [String]) -> String? {
        guard arguments.first == "help" else { return nil }
        var command: ParsableCommand.Type = Rampart.self
        var path = [commandName(Rampart.self)]
        for topic in arguments.dropFirst() where !topic.hasPrefix("-") {
            var names: [String] = []
            var found: ParsableCommand.Type?
            for subcommand in command.configuration.subcommands {
                let name = commandName(subcommand)
                names.append(name)
                if name == topic || subcommand.configuration.aliases.contains(topic) { found = subcommand }
            }
            guard let next = found else {
                let known =
                    names.isEmpty
                    ? "'\(path.joined(separator: " "))' has no subcommands"
                    : "use one of: \(names.joined(separator: ", "))"
                return "'\(topic)' is not a command of '\(path.joined(separator: " "))': \(known)"
            }
            command = next
            path.append(topic)
        }
        return nil
    }

    private static func commandName(_ command: ParsableCommand.Type) -> String {
        command._commandName
    }
}

/// A command that ran and failed for a reason outside its input (a server that does not answer, an
/// output that cannot be written): printed as an error, with exit status 1.
struct CommandFailure: Error {
    let message: String

    init(_ message: String) {
        self.message = message
    }
}

/// Standard output for what a command exists to deliver (a token, a certificate chain): a write
/// that fails (a full disk, a closed pipe) fails the command instead of passing in silence.
enum StandardOutput {
    static func deliver(_ text: String, what: String) throws {
        fflush(nil)  // what print() buffered goes first
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw CommandFailure("\(what) could not be written to standard output (\(String(cString: strerror(errno)))); it was not delivered")
            }
            offset += written
        }
    }
}

/// Standard error, written without trapping when it cannot be written (closed, or a full device):
/// the message is lost, and the command's exit status still says what happened.
enum StandardError {
    static func write(_ data: Data) {
        try? FileHandle.standardError.write(contentsOf: data)
    }
}

/// Checks of option values several commands take, made before a command runs.
enum OptionValues {
    /// Refuses a `--log-level` that is not one of swift-log's levels.
    static func checkLogLevel(_ level: String) throws {
        guard Logger.Level(rawValue: level) == nil else { return }
        throw ValidationError("--log-level \(level): use one of trace, debug, info, notice, warning, error, critical")
    }

    /// Refuses a namespace option that is not a Kubernetes namespace name (a DNS label).
    static func checkNamespace(_ namespace: String, option: String) throws {
        guard !DNSName.isLabel(namespace) else { return }
        throw ValidationError("\(option) \"\(namespace)\" is not a namespace name: use lower-case letters, digits and '-', at most 63, such as istio-system")
    }
}

/// Global logging setup: the executable alone bootstraps the logging backend.
enum LoggingSetup {
    static func bootstrap(level: Logger.Level = .info) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Options shared by every command that reads the CA's state.
struct StateOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The CA state directory made by 'rampart ca init'.", valueName: "dir"))
    var state: String

    mutating func validate() throws {
        guard !state.isEmpty else { throw ValidationError("--state is empty: give the CA state directory, such as ./ca-state") }
    }
}
