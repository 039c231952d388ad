/// The evaluator benchmark behind `rampart bench authz`: decisions per second on one thread over
/// synthetic meshes of several policy counts, measured in the same run so sizes can be compared.
///
/// Each mesh is generated as Istio YAML and loaded through `PolicyEngine(yaml:)`, so the figures are
/// for the real compiled snapshot. Requests are built before the clock starts. Two paths are timed:
/// - `perRequest`: `PolicySnapshot.evaluate(_:)`, which looks the destination workload's policies up
///   by namespace and labels and then evaluates: everything a proxy does per request when it
///   does not hold the workload's policies;
/// - `resolvedWorkload`: `WorkloadPolicies.evaluate(_:)` on policies resolved once per workload before
///   timing, as a sidecar serving a single workload holds them;
/// - `uncachedLookup`: `PolicySnapshot.workload(namespace:labels:)` then `evaluate`, resolving from the
///   namespace and label index on every request, as `evaluate` does on a cache miss.
///
/// Rounds of the sizes are interleaved, so noise from other processes falls on every size alike;
/// figures are medians over rounds, and the ratio to the first size is the median of per-round ratios.
public enum AuthzBenchmark {
    /// What is timed per decision.
    public enum Path: String, Sendable, Hashable, CaseIterable {
        /// Snapshot lookup by namespace and labels, then evaluation.
        case perRequest = "per-request"
        /// Evaluation against the workload's policies resolved ahead of time.
        case resolvedWorkload = "resolved-workload"
        /// Resolution from the index on every request, bypassing the cache, then evaluation.
        case uncachedLookup = "uncached-lookup"
    }

    /// The figures of one path on one mesh.
    ///
    /// The primary figures are in thread CPU time, which the other processes of a busy machine do
    /// not inflate; wall-clock figures are given beside them.
    public struct Measurement: Sendable, Hashable {
        /// What was timed.
        public let path: Path
        /// Median decisions per CPU-second of the benchmark thread over the rounds.
        public let decisionsPerSecond: Double
        /// Median thread-CPU nanoseconds per decision over the rounds.
        public let nanosecondsPerDecision: Double
        /// Median wall-clock nanoseconds per decision over the rounds.
        public let wallNanosecondsPerDecision: Double
        /// Median over rounds of this mesh's CPU ns/decision divided by the first mesh's in the same round.
        public let ratioToFirst: Double
        /// Thread-CPU nanoseconds per decision of each round.
        public let rounds: [Double]
        /// Decisions made while timing.
        public let decisions: Int
    }

    /// Everything measured on one mesh.
    public struct Result: Sendable, Hashable {
        /// AuthorizationPolicies in the mesh.
        public let policies: Int
        /// Workloads in the mesh.
        public let workloads: Int
        /// Distinct prebuilt requests, cycled while timing.
        public let requests: Int
        /// Seconds to load, validate and compile the mesh's YAML.
        public let loadSeconds: Double
        /// Validation errors found while loading (a sound mesh has none).
        public let validationErrors: Int
        /// Mean number of AuthorizationPolicies applying to a request's destination.
        public let applicablePolicies: Double
        /// Allowed requests in one pass over the requests.
        public let allowed: Int
        /// Denied requests in one pass over the requests.
        public let denied: Int
        /// Lookup and evaluation per request.
        public let perRequest: Measurement
        /// Evaluation with the workload resolved once.
        public let resolvedWorkload: Measurement
        /// Index resolution and evaluation on every request.
        public let uncachedLookup: Measurement

        /// The three measurements, in `Path` order.
        public var measurements: [Measurement] { [perRequest, resolvedWorkload, uncachedLookup] }
    }

    /// Generates a mesh per policy count, loads it, and times both paths on one thread.
    ///
    /// Time spent timing is about `policyCounts.count × 3 × rounds × roundDuration`, plus loading.
    public static func run(
        policyCounts: [Int] = [10, 1000, 10000], workloads: Int = 1000, requests: Int = 8192, rounds: Int = 5,
        roundDuration: Duration = .milliseconds(300), seed: UInt64 = 0x5241_4D50
    ) -> [Result] {
        let clock = ContinuousClock()
        let benches = policyCounts.map { count in
            let mesh = SyntheticMesh(policies: count, workloads: workloads, requests: requests, seed: seed)
            let loadStart = clock.now
            let engine = mesh.engine()
            let loadSeconds = seconds(clock.now - loadStart)
            return PreparedBench(mesh: mesh, engine: engine, loadSeconds: loadSeconds)
        }
        var cpu = Array(repeating: [Path: [Double]](), count: benches.count)
        var wall = Array(repeating: [Path: [Double]](), count: benches.count)
        var decisions = Array(repeating: [Path: Int](), count: benches.count)
        for bench in benches { bench.warmUp() }
        for _ in 0..<max(rounds, 1) {
            for path in Path.allCases {
                for (index, bench) in benches.enumerated() {
                    let timing = bench.time(path, for: roundDuration, clock: clock)
                    cpu[index][path, default: []].append(timing.cpu)
                    wall[index][path, default: []].append(timing.wall)
                    decisions[index][path, default: 0] += timing.decisions
                }
            }
        }
        return benches.enumerated().map { index, bench in
            func measurement(_ path: Path) -> Measurement {
                let own = cpu[index][path] ?? []
                let first = cpu[0][path] ?? []
                let median = Self.median(own)
                return Measurement(
                    path: path, decisionsPerSecond: median > 0 ? 1e9 / median : 0, nanosecondsPerDecision: median,
                    wallNanosecondsPerDecision: Self.median(wall[index][path] ?? []),
                    ratioToFirst: Self.median(zip(own, first).map { $1 > 0 ? $0 / $1 : 0 }), rounds: own,
                    decisions: decisions[index][path] ?? 0)
            }
            let tally = bench.tally()
            return Result(
                policies: bench.mesh.policyCount, workloads: bench.mesh.workloads.count, requests: bench.mesh.requests.count,
                loadSeconds: bench.loadSeconds,
                validationErrors: bench.engine.diagnostics.filter { $0.severity == .error }.count,
                applicablePolicies: bench.applicablePolicies, allowed: tally.allowed, denied: tally.denied,
                perRequest: measurement(.perRequest), resolvedWorkload: measurement(.resolvedWorkload),
                uncachedLookup: measurement(.uncachedLookup))
        }
    }

    /// Generates one mesh and decides every request `passes` times on `path`, untimed: a fixed
    /// amount of work for profilers and instruction counters (callgrind, perf). Returns the number
    /// of decisions made.
    public static func profile(
        _ path: Path, policies: Int, workloads: Int = 1000, requests: Int = 8192, passes: Int,
        seed: UInt64 = 0x5241_4D50
    ) -> Int {
        let mesh = SyntheticMesh(policies: policies, workloads: workloads, requests: requests, seed: seed)
        let bench = PreparedBench(mesh: mesh, engine: mesh.engine(), loadSeconds: 0)
        var checksum = 0
        for _ in 0..<max(passes, 0) { checksum &+= bench.pass(path) }
        precondition(checksum != 0 || passes == 0, "decisions were optimised away")
        return max(passes, 0) * mesh.requests.count
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
