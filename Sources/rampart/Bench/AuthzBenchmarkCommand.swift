import ArgumentParser
import Foundation
import RampartPolicy

/// `rampart bench authz`: the policy evaluator on synthetic meshes, one thread.
struct AuthzBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authz",
        abstract: "Evaluate requests against synthetic meshes of several sizes on one thread; print decisions/s and ns/decision.",
        discussion: """
            Each mesh is generated as Istio YAML (per-namespace defaults, per-workload selectors, mesh-wide policies in the \
            root namespace, PeerAuthentications) and loaded through the real loader. Requests are built before timing. \
            Figures are thread CPU time, medians over rounds in which the sizes take turns, so the ratio between sizes \
            comes from the same conditions.
            """
    )

    @Option(parsing: .unconditional, help: ArgumentHelp("Mesh sizes, in AuthorizationPolicies, comma separated.", valueName: "n,n,..."))
    var policies: String = "10,1000,10000"

    @Option(parsing: .unconditional, help: "Workloads in each mesh.")
    var workloads: Int = 1000

    @Option(parsing: .unconditional, help: "Rounds per size (the median is reported).")
    var rounds: Int = 5

    @Option(parsing: .unconditional, help: "Milliseconds each size runs per round.")
    var roundMilliseconds: Int = 300

    @Option(parsing: .unconditional, help: "Seed of the generator, for reproducible meshes.")
    var seed: UInt64 = 0x5241_4D50

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(
        help: ArgumentHelp(
            "Instead of timing, decide every request --passes times on this path (per-request, resolved-workload or uncached-lookup) for one --policies size, for profilers and instruction counters.",
            valueName: "path"))
    var profile: String?

    @Option(parsing: .unconditional, help: "Passes over the requests with --profile.")
    var passes: Int = 4

    func validate() throws {
        guard !sizes.isEmpty, sizes.allSatisfy({ (1...100_000).contains($0) }) else {
            throw ValidationError("--policies \(policies): expected comma-separated sizes between 1 and 100000, such as 10,1000,10000")
        }
        guard (1...100_000).contains(workloads) else { throw ValidationError("--workloads must be 1…100000") }
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1…50") }
        guard (10...10_000).contains(roundMilliseconds) else { throw ValidationError("--round-milliseconds must be 10…10000") }
        if let profile {
            guard AuthzBenchmark.Path(rawValue: profile) != nil else {
                let paths = AuthzBenchmark.Path.allCases.map(\.rawValue).joined(separator: ", ")
                throw ValidationError("--profile \(profile): expected one of \(paths)")
            }
            guard sizes.count == 1 else {
                throw ValidationError("--profile measures one mesh: give a single size, such as --policies 1000")
            }
            guard (0...1000).contains(passes) else { throw ValidationError("--passes must be 0…1000") }
        }
    }

    /// The sizes, or none when any entry is not a number (`10,,20`, `10,x`).
    var sizes: [Int] {
        let entries = policies.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return entries.contains(nil) ? [] : entries.compactMap { $0 }
    }

    func run() throws {
        if let profile, let path = AuthzBenchmark.Path(rawValue: profile), let size = sizes.first {
            let decisions = AuthzBenchmark.profile(path, policies: size, workloads: workloads, passes: passes, seed: seed)
            print("\(decisions) decisions on the \(path.rawValue) path, \(size) policies, \(workloads) workloads")
            return
        }
        let results = AuthzBenchmark.run(
            policyCounts: sizes, workloads: workloads, rounds: rounds, roundDuration: .milliseconds(roundMilliseconds), seed: seed)
        if json {
            print(try JSONText.render(AuthzBenchmark.renderJSON(results)))
        } else {
            print(AuthzBenchmark.renderText(results))
        }
    }
}
