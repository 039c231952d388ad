/// A generated service mesh for benchmarks: Istio YAML for its security resources, its workloads,
/// and requests drawn over them.
///
/// Namespaces hold about twenty workloads each, labelled `app`, `version`,
/// `security.istio.io/tlsMode` and `pod-template-hash`. AuthorizationPolicies are a few mesh-wide
/// ones in the root namespace, up to two namespace-wide ones per namespace, and the rest select
/// single workloads (about 70 % ALLOW, 22 % DENY, 8 % AUDIT, 1 % dry run). PeerAuthentications and
/// RequestAuthentications come on top and are not counted as policies. Everything is a pure
/// function of the counts and the seed; the requests depend only on the workloads and the seed, so
/// meshes of different policy counts are measured with the same request stream.
public struct SyntheticMesh: Sendable {
    /// The number of AuthorizationPolicies in `yaml`.
    public let policyCount: Int
    /// The workloads, in generation order.
    public let workloads: [Workload]
    /// The namespaces the workloads run in (the root namespace not included).
    public let namespaces: [String]
    /// Every resource as multi-document Istio YAML, ready for `PolicyEngine(yaml:)`.
    public let yaml: String
    /// The requests, built ahead of time.
    public let requests: [AuthzRequest]
    /// The root namespace the mesh-wide policies live in.
    public let rootNamespace: String

    /// Generates a mesh with `policies` AuthorizationPolicies over `workloads` workloads.
    public init(
        policies: Int, workloads: Int, requests: Int = 4096, seed: UInt64 = 0x5241_4D50,
        rootNamespace: String = "istio-system"
    ) {
        var shape = SeededGenerator(seed: seed)
        let topology = SyntheticTopology(workloads: max(workloads, 1), random: &shape)
        var policyRandom = SeededGenerator(seed: seed &+ 1)
        var requestRandom = SeededGenerator(seed: seed &+ 2)
        policyCount = max(policies, 0)
        self.workloads = topology.workloads.map { Workload(namespace: $0.namespace, labels: $0.labels) }
        namespaces = topology.namespaces
        self.rootNamespace = rootNamespace
        yaml = SyntheticPolicyWriter(topology: topology, rootNamespace: rootNamespace)
            .yaml(policies: policyCount, random: &policyRandom)
        self.requests = SyntheticRequests(topology: topology).draw(max(requests, 1), random: &requestRandom)
    }

    /// Loads, validates and compiles the mesh through the real loader.
    public func engine() -> PolicyEngine {
        PolicyEngine(yaml: yaml, file: "synthetic-mesh.yaml", options: SnapshotOptions(rootNamespace: rootNamespace))
    }
}
