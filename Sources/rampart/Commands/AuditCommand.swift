import ArgumentParser
import Foundation
import RampartControlPlane
import RampartStore

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Inspect the hash-chained audit log.",
        subcommands: [Verify.self, List.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the store's pages, then every audit row's hash and link; exits non-zero at the first break.")

        @OptionGroup var stateOptions: StateOptions

        func run() async throws {
            let store = try StateDirectory(stateOptions.state).openStore(.readOnly)
            let check = try await store.quickCheck()
            guard check == ["ok"] else {
                print("store damaged: SQLite's quick_check of \(store.path) reports \(check.prefix(3).joined(separator: "; ")); restore the file from a backup")
                throw ExitCode(1)
            }
            switch try await store.verifyAuditChain() {
            case .intact(let count):
                print("audit chain intact: \(count) event(s)")
            case .broken(let sequence, let reason):
                print("audit chain broken at event \(sequence): \(reason)")
                throw ExitCode(1)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the audit events, oldest first.")

        @OptionGroup var stateOptions: StateOptions

        func run() async throws {
            let store = try StateDirectory(stateOptions.state).openStore(.readOnly)
            let iso = ISO8601DateFormatter()
            for event in try await store.events() {
                print("\(event.sequence)\t\(iso.string(from: event.time))\t\(event.eventType)\t\(event.actor)\t\(event.subject)\t\(event.details)")
            }
        }
    }
}
