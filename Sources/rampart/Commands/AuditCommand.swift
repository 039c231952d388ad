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
        static let configuration = CommandConfiguration(abstract: "Check the store's pages, every audit row's hash and link, and the config store, certificates and tokens against the log; exits non-zero at the first break.")

        @OptionGroup var stateOptions: StateOptions

        func run() async throws {
            let state = StateDirectory(stateOptions.state)
            let store = try state.openStore(.readOnly)
            let check = try await store.quickCheck()
            guard check == ["ok"] else {
                print("store damaged: SQLite's quick_check of \(store.path) reports \(check.prefix(3).joined(separator: "; ")); restore the file from a backup")
                throw ExitCode(1)
            }
            // An intact chain in another store says nothing of this CA's records.
            if let problem = try await state.foreignStoreProblem(store) {
                print("store not this CA's: \(problem)")
                throw ExitCode(1)
            }
            switch try await store.verifyAuditChain() {
            case .intact(let count):
                print("audit chain intact: \(count) event(s)")
            case .broken(let sequence, let reason):
                print("audit chain broken at event \(sequence): \(reason)")
                throw ExitCode(1)
            }
            // The chain cannot show events cut from its end, nor config rows changed without an
            // event: the config store is checked against what the log says it holds.
            let disagreements = try await store.configDisagreements()
            guard disagreements.isEmpty else {
                print("config store and audit log disagree (\(disagreements.count)):")
                for problem in disagreements { print("  \(problem)") }
                print("restore the store from a backup, and find out who changed it")
                throw ExitCode(1)
            }
            print("config store matches the audit log")
            // The same for the certificates and tokens: an un-revoked certificate or an un-spent
            // token leaves the chain intact.
            let issuance = try await store.issuanceDisagreements()
            guard issuance.isEmpty else {
                print("certificates and tokens disagree with the audit log (\(issuance.count)):")
                for problem in issuance.prefix(50) { print("  \(problem)") }
                if issuance.count > 50 { print("  … and \(issuance.count - 50) more") }
                print("restore the store from a backup, and find out who changed it")
                throw ExitCode(1)
            }
            print("certificates and tokens match the audit log")
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
