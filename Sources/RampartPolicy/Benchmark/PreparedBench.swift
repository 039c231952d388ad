/// One mesh ready to time: its compiled engine, its requests, and each request's destination
/// policies resolved ahead of time for the resolved-workload path.
struct PreparedBench {
    let mesh: SyntheticMesh
    let engine: PolicyEngine
    let loadSeconds: Double
    let resolved: [WorkloadPolicies]
    /// The requests, each in its own box (see `pass`).
    let held: [HeldRequest]

    private struct Destination: Hashable {
        let namespace: String
        let labels: [String: String]
    }

    init(mesh: SyntheticMesh, engine: PolicyEngine, loadSeconds: Double) {
        self.mesh = mesh
        self.engine = engine
        self.loadSeconds = loadSeconds
        held = mesh.requests.map(HeldRequest.init)
        var cache: [Destination: WorkloadPolicies] = [:]
        resolved = mesh.requests.map { request in
            let key = Destination(namespace: request.destination.namespace, labels: request.destination.labels)
            if let found = cache[key] { return found }
            let policies = engine.snapshot.workload(namespace: key.namespace, labels: key.labels)
            cache[key] = policies
            return policies
        }
    }

    /// Mean number of AuthorizationPolicies applying per request.
    var applicablePolicies: Double {
        guard !resolved.isEmpty else { return 0 }
        return Double(resolved.reduce(0) { $0 + $1.policyCount }) / Double(resolved.count)
    }

    /// Allowed and denied counts over one pass, checking that both paths agree.
    func tally() -> (allowed: Int, denied: Int) {
        var allowed = 0
        for (request, policies) in zip(mesh.requests, resolved) {
            let decision = engine.snapshot.evaluate(request)
            precondition(decision == policies.evaluate(request), "the two paths disagree")
            if decision.decision == .allow { allowed += 1 }
        }
        return (allowed, mesh.requests.count - allowed)
    }

    /// One untimed pass over each path.
    func warmUp() {
        for path in AuthzBenchmark.Path.allCases { _ = pass(path) }
    }

    /// Runs whole passes over the requests until `duration` of wall time has elapsed; returns wall
    /// and thread-CPU nanoseconds per decision and the number of decisions.
    func time(_ path: AuthzBenchmark.Path, for duration: Duration, clock: ContinuousClock)
        -> (wall: Double, cpu: Double, decisions: Int)
    {
        let start = clock.now
        let cpuStart = ThreadCPUClock.nanoseconds()
        var decisions = 0
        var checksum = 0
        var elapsed = Duration.zero
        repeat {
            checksum &+= pass(path)
            decisions += mesh.requests.count
            elapsed = clock.now - start
        } while elapsed < duration
        let cpu = Double(ThreadCPUClock.nanoseconds() - cpuStart)
        precondition(checksum != 0 || decisions == 0, "decisions were optimised away")
        let count = Double(max(decisions, 1))
        return (AuthzBenchmark.seconds(elapsed) * 1e9 / count, cpu / count, decisions)
    }

    /// Decides every request once; returns the sum of statuses so the work cannot be dropped.
    ///
    /// Requests are read from `HeldRequest` boxes, each kept alive for its call by
    /// `withExtendedLifetime`: handing `evaluate` an element of an array, or a box's property
    /// without that guarantee, makes Swift copy the whole request (a retain and a release per
    /// string and dictionary) to keep it alive during the call, which a proxy passing the request
    /// it just parsed never pays.
    @inline(never)
    func pass(_ path: AuthzBenchmark.Path) -> Int {
        var sum = 0
        let snapshot = engine.snapshot
        let requests = held
        switch path {
        case .perRequest:
            for index in requests.indices {
                sum &+= withExtendedLifetime(requests[index]) { snapshot.evaluate($0.request).status }
            }
        case .resolvedWorkload:
            for index in requests.indices {
                sum &+= withExtendedLifetime(requests[index]) { resolved[index].evaluate($0.request).status }
            }
        case .uncachedLookup:
            for index in requests.indices {
                sum &+= withExtendedLifetime(requests[index]) { held in
                    snapshot.workload(namespace: held.request.destination.namespace, labels: held.request.destination.labels)
                        .evaluate(held.request).status
                }
            }
        }
        return sum
    }

    /// A prebuilt request held by reference, so reading it for a call copies nothing.
    final class HeldRequest: Sendable {
        let request: AuthzRequest

        init(_ request: AuthzRequest) {
            self.request = request
        }
    }
}
