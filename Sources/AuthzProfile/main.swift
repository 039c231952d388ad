// authz-profile PATH POLICIES PASSES: the fixed, untimed work of `rampart bench authz --profile`,
// in a binary small enough for valgrind. For example, instructions per decision:
//   valgrind --tool=callgrind --toggle-collect='*WorkloadPoliciesV8evaluate*' \
//     .build/release/authz-profile resolved-workload 1000 4
// then divide the collected count by the decisions printed.
//
// authz-profile time [POLICIES,...] [ROUNDS] [REQUESTS]: the timed table of `rampart bench authz`
// (1000 workloads, 8192 prebuilt requests unless REQUESTS says otherwise), without building
// `rampart`.
import Foundation
import RampartPolicy

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "time" {
    let sizes = arguments.count > 1 ? arguments[1].split(separator: ",").compactMap { Int($0) } : [10, 1000, 10000]
    let rounds = arguments.count > 2 ? Int(arguments[2]) ?? 0 : 5
    let requests = arguments.count > 3 ? Int(arguments[3]) ?? 0 : 8192
    guard !sizes.isEmpty, sizes.allSatisfy({ (1...100_000).contains($0) }), (1...100).contains(rounds), (1...65536).contains(requests) else {
        print("usage: authz-profile time [POLICIES,...] [ROUNDS(1-100)] [REQUESTS(1-65536)]")
        exit(2)
    }
    print(AuthzBenchmark.renderText(AuthzBenchmark.run(policyCounts: sizes, requests: requests, rounds: rounds)))
    exit(0)
}
guard arguments.count == 3, let path = AuthzBenchmark.Path(rawValue: arguments[0]),
    let policies = Int(arguments[1]), (1...100_000).contains(policies),
    let passes = Int(arguments[2]), (0...1000).contains(passes)
else {
    let paths = AuthzBenchmark.Path.allCases.map(\.rawValue).joined(separator: "|")
    print("usage: authz-profile \(paths) POLICIES(1-100000) PASSES(0-1000)")
    print("       authz-profile time [POLICIES,...] [ROUNDS(1-100)] [REQUESTS(1-65536)]")
    exit(2)
}
let decisions = AuthzBenchmark.profile(path, policies: policies, passes: passes)
print("\(decisions) decisions on the \(path.rawValue) path, \(policies) policies, 1000 workloads")
