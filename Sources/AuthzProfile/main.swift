// authz-profile PATH POLICIES PASSES: the fixed, untimed work of `rampart bench authz --profile`,
// in a binary small enough for valgrind. For example, instructions per decision:
//   valgrind --tool=callgrind --toggle-collect='*WorkloadPoliciesV8evaluate*' \
//     .build/release/authz-profile resolved-workload 1000 4
// then divide the collected count by the decisions printed.
import Foundation
import RampartPolicy

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 3, let path = AuthzBenchmark.Path(rawValue: arguments[arguments.startIndex]),
    let policies = Int(arguments[arguments.startIndex + 1]), (1...100_000).contains(policies),
    let passes = Int(arguments[arguments.startIndex + 2]), (0...1000).contains(passes)
else {
    let paths = AuthzBenchmark.Path.allCases.map(\.rawValue).joined(separator: "|")
    print("usage: authz-profile \(paths) POLICIES(1-100000) PASSES(0-1000)")
    exit(2)
}
let decisions = AuthzBenchmark.profile(path, policies: policies, passes: passes)
print("\(decisions) decisions on the \(path.rawValue) path, \(policies) policies, 1000 workloads")
