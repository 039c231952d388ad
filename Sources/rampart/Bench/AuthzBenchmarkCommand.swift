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

    @Option(help: ArgumentHelp("Mesh sizes, in AuthorizationPolicies, comma separated.", valueName: "n,n,..."))
    var policies: String = "10,1000,10000"

    @Option(help: "Workloads in each mesh.")
    var workloads: Int = 1000

    @Option(help: "Rounds per size (the median is reported).")
    var rounds: Int = 5

    @Option(help: "Milliseconds each size runs per round.")
    var roundMilliseconds: Int = 300

    @Option(help: "Seed of the generator, for reproducible meshes.")
    var seed: UInt64 = 0x5241_4D50

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard !sizes.isEmpty, sizes.allSatisfy({ (1...100_000).contains($0) }) else {
            throw ValidationError("--policies \(policies): expected comma-separated sizes between 1 and 100000, such as 10,1000,10000")
        }
        guard (1...100_000).contains(workloads) else { throw ValidationError("--workloads must be 1…100000") }
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1…50") }
        guard (10...10_000).contains(roundMilliseconds) else { throw ValidationError("--round-milliseconds must be 10…10000") }
    }

    var sizes: [Int] { policies.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func run() throws {
        let results = AuthzBenchmark.run(
            policyCounts: sizes, workloads: workloads, rounds: rounds, roundDuration: .milliseconds(roundMilliseconds), seed: seed)
        if json {
            print(try JSONText.render(AuthzBenchmark.renderJSON(results)))
        } else {
            print(AuthzBenchmark.renderText(results))
        }
    }
}
