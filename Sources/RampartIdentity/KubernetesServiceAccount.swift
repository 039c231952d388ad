/// Mapping of Kubernetes service-account subjects to SPIFFE IDs, as Istio does for
/// projected service-account tokens.
public enum KubernetesServiceAccount {
    /// Maps `system:serviceaccount:<ns>:<sa>` to `spiffe://<td>/ns/<ns>/sa/<sa>`.
    ///
    /// Returns `nil` when the subject does not have that shape.
    public static func spiffeID(forSubject subject: String, trustDomain: TrustDomain) -> SPIFFEID? {
        let parts = subject.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "system", parts[1] == "serviceaccount" else { return nil }
        return try? SPIFFEID.workload(
            trustDomain: trustDomain,
            namespace: String(parts[2]),
            serviceAccount: String(parts[3])
        )
    }
}
