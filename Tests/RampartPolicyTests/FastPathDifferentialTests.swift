import Foundation
import Testing

@testable import RampartPolicy

@Suite("fast path decides as the reference evaluation")
struct FastPathDifferentialTests {
    @Test("synthetic meshes: indexed flat evaluation equals the straightforward one on every request", arguments: [
        (policies: 10, seed: UInt64(1)), (policies: 300, seed: 2), (policies: 1000, seed: 3), (policies: 600, seed: 0x5241_4D50),
    ])
    func syntheticMeshes(policies: Int, seed: UInt64) {
        let mesh = SyntheticMesh(policies: policies, workloads: 120, requests: 800, seed: seed)
        let snapshot = mesh.engine().snapshot
        var disagreements: [String] = []
        for request in mesh.requests {
            let workload = snapshot.workload(namespace: request.destination.namespace, labels: request.destination.labels)
            let fast = snapshot.evaluate(request)
            let reference = workload.evaluateReference(request)
            if fast != reference || fast != workload.evaluate(request) || fast != workload.explain(request).decision {
                disagreements.append("\(request): fast \(fast.reason), reference \(reference.reason)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, first: \(disagreements.first ?? "")")
    }

    @Test("variants of synthetic requests (TCP, plaintext, other principals, DISABLE ports) decide alike")
    func mutatedRequests() {
        let mesh = SyntheticMesh(policies: 400, workloads: 60, requests: 600, seed: 7)
        let snapshot = mesh.engine().snapshot
        var random = SeededGenerator(seed: 99)
        var disagreements = 0
        for request in mesh.requests {
            let other = mesh.requests[random.index(mesh.requests.count)]
            let variants = [
                AuthzRequest(
                    transport: .tcp, source: request.source, destination: request.destination, sni: request.host),
                AuthzRequest(
                    transport: request.transport, source: other.source, destination: request.destination,
                    method: other.method, host: other.host?.uppercased(), path: other.path, headers: other.headers,
                    extAuthz: random.chance(0.5) ? .allow : nil, jwt: other.jwt),
                AuthzRequest(
                    transport: .http,
                    source: AuthzRequest.Source(
                        principal: request.source.principal.map { $0 + "-9" }, namespace: "ops", ip: "192.0.2.7",
                        remoteIP: "100.64.1.1", mtls: random.chance(0.5)),
                    destination: request.destination, method: "DELETE", host: "x.internal.example.com",
                    path: "/internal/a/../admin", headers: ["x-canary": "true", "x-tenant": "tenant-shared"]),
                // The method index: methods policies list, other cases, unknown methods and none.
                AuthzRequest(
                    transport: request.transport, source: request.source, destination: request.destination,
                    method: [nil, "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "get", "OPTIONS"][random.index(9)],
                    host: request.host, path: request.path, headers: request.headers, jwt: request.jwt),
            ]
            for variant in variants {
                let workload = snapshot.workload(
                    namespace: variant.destination.namespace, labels: variant.destination.labels)
                if snapshot.evaluate(variant) != workload.evaluateReference(variant) { disagreements += 1 }
            }
        }
        #expect(disagreements == 0)
    }

    @Test("every corpus case decides alike on both paths")
    func corpus() throws {
        let (cases, environment) = try Corpus.authzCases()
        var failures: [String] = []
        for corpusCase in cases {
            let engine = PolicyEngine(yaml: corpusCase.yaml, options: SnapshotOptions(jwks: environment))
            let request = try corpusCase.request()
            let workload = engine.snapshot.workload(
                namespace: request.destination.namespace, labels: request.destination.labels)
            if engine.snapshot.evaluate(request) != workload.evaluateReference(request) {
                failures.append(corpusCase.id)
            }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test("a workload whose policies read no header decides alike without the request's headers")
    func headersOnlyWhenRead() throws {
        // The corpus: its cases carry headers, and many of their workloads have no header condition.
        let (cases, environment) = try Corpus.authzCases()
        var reading = 0
        var notReading = 0
        var disagreements: [String] = []
        for corpusCase in cases {
            let snapshot = PolicyEngine(yaml: corpusCase.yaml, options: SnapshotOptions(jwks: environment)).snapshot
            let request = try corpusCase.request()
            let workload = snapshot.workload(namespace: request.destination.namespace, labels: request.destination.labels)
            guard !workload.readsHeaders else {
                reading += 1
                continue
            }
            if !request.headers.isEmpty { notReading += 1 }
            let bare = AuthzRequest(
                transport: request.transport, source: request.source, destination: request.destination, method: request.method,
                host: request.host, path: request.path, headers: [:], extAuthz: request.extAuthz, sni: request.sni, jwt: request.jwt)
            if workload.evaluate(bare) != workload.evaluate(request) { disagreements.append(corpusCase.id) }
        }
        #expect(reading > 0 && notReading > 0, "the corpus should have cases of both kinds: \(reading) read headers, \(notReading) with headers do not")
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, first: \(disagreements.first ?? "")")

        func reads(_ yaml: String) -> Bool {
            PolicyEngine(yaml: yaml).snapshot.workload(namespace: "shop", labels: ["app": "cart"]).readsHeaders
        }
        let header = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: shop}
            spec:
              rules: [{when: [{key: "request.headers[x-user]", values: [alice]}]}]
            """
        let paths = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: shop}
            spec:
              rules: [{to: [{operation: {paths: [/a], hosts: [cart]}}]}]
            """
        let jwt = """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: j, namespace: shop}
            spec:
              jwtRules: [{issuer: iss, jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}'}]
            """
        let dryRun = header.replacingOccurrences(of: "metadata: {name: p, namespace: shop}", with: "metadata: {name: p, namespace: shop, annotations: {istio.io/dry-run: \"true\"}}")
        #expect(reads(header))
        #expect(!reads(paths))
        #expect(reads(jwt))
        #expect(reads(dryRun))
        #expect(!reads(""))
    }
}
