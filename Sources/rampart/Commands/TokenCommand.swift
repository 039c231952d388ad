import ArgumentParser
import Foundation
import RampartControlPlane
import RampartIdentity

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Manage one-time bootstrap tokens.",
        subcommands: [Create.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a one-time bootstrap token for a workload identity; prints the token alone."
        )

        @OptionGroup var stateOptions: StateOptions

        @Option(help: ArgumentHelp("The identity the token grants, in the CA's trust domain.", valueName: "spiffe-id"))
        var spiffeId: String

        @Option(parsing: .unconditional, help: "How long the token works, such as 10m or 1h (default: 10m).", transform: TTL.parse)
        var ttl: TTL = TTL(argument: "10m")!

        func run() async throws {
            let state = StateDirectory(stateOptions.state)
            let trustDomain = try state.loadConfig().parsedTrustDomain()
            let id = try Cert.parseIdentity(spiffeId, trustDomain: trustDomain)
            let store = try await state.openStoreForWriting()
            let token = try await BootstrapTokens.create(store: store, spiffeID: id, ttl: ttl.seconds, actor: Operator.actor)
            try StandardOutput.deliver(token + "\n", what: "the token (stored as its hash only: unused, it expires on its own)")
        }
    }
}
