import ArgumentParser
import Foundation
import Logging
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
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch let error as ValidationError {
            FileHandle.standardError.write(Data("Error: \(error.message)\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        } catch {
            // SQLite finding the store damaged part-way through a command: say so in words.
            if let damage = StoreError.damage(error) {
                FileHandle.standardError.write(Data("Error: \(damage.reason)\n".utf8))
                Foundation.exit(ExitCode.failure.rawValue)
            }
            exit(withError: error)
        }
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
}
