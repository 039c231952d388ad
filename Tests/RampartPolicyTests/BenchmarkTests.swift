import RampartPolicy
import Testing

@Suite("synthetic mesh and authz benchmark")
struct BenchmarkTests {
    @Test("generates a mesh that loads with no validation errors and the requested policy count")
    func meshLoadsCleanly() {
        let mesh = SyntheticMesh(policies: 300, workloads: 60, requests: 200)
        let engine = mesh.engine()
        #expect(engine.diagnostics.filter { $0.severity == .error }.isEmpty, "\(PolicyEngine.renderHuman(engine.diagnostics))")
        let loaded = PolicyLoader.load(yaml: mesh.yaml)
        let policies = loaded.resources.filter { if case .authorizationPolicy = $0 { true } else { false } }
        #expect(loaded.diagnostics.isEmpty && policies.count == 300)
        #expect(mesh.workloads.count == 60 && mesh.requests.count == 200)
        #expect(Set(mesh.workloads.map(\.namespace)).count == 3)
    }

    @Test("draws requests that are allowed and denied, for several reasons")
    func requestMix() {
        let mesh = SyntheticMesh(policies: 300, workloads: 60, requests: 500)
        let snapshot = mesh.engine().snapshot
        let decisions = mesh.requests.map { snapshot.evaluate($0) }
        let allowed = decisions.filter { $0.decision == .allow }.count
        #expect(allowed > 50 && allowed < 450)
        #expect(Set(decisions.map(\.cause)).count >= 4)
    }

    @Test("profile mode makes a fixed number of decisions on the chosen path", arguments: AuthzBenchmark.Path.allCases)
    func profileMode(path: AuthzBenchmark.Path) {
        #expect(AuthzBenchmark.profile(path, policies: 20, workloads: 10, requests: 64, passes: 3) == 192)
        #expect(AuthzBenchmark.profile(path, policies: 20, workloads: 10, requests: 64, passes: 0) == 0)
    }

    @Test("returns sane figures for a tiny mesh")
    func tinyRun() {
        let results = AuthzBenchmark.run(
            policyCounts: [2, 20], workloads: 10, requests: 64, rounds: 1, roundDuration: .milliseconds(5))
        #expect(results.map(\.policies) == [2, 20])
        for result in results {
            #expect(result.validationErrors == 0)
            #expect(result.allowed + result.denied == 64)
            for measurement in result.measurements {
                #expect(measurement.decisions >= 64)
                #expect(measurement.nanosecondsPerDecision > 0 && measurement.decisionsPerSecond > 0)
            }
        }
        #expect(results[0].perRequest.ratioToFirst == 1)
        #expect(AuthzBenchmark.renderText(results).contains("resolved-workload"))
        #expect((AuthzBenchmark.renderJSON(results)["meshes"] as? [[String: Any]])?.count == 2)
    }
}
