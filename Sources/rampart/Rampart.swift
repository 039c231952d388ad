import ArgumentParser
import Foundation
import Logging

/// The `rampart` command: a service mesh's security system.
@main
struct Rampart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rampart",
        abstract: "A service mesh's security system: certificate authority, agents, policies and proxies.",
        subcommands: [CA.self, Agent.self, Proxy.self, Token.self, Cert.self, Audit.self, Analyze.self, Authz.self, Apply.self, Get.self, Delete.self, Status.self, Bench.self]
    )
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
