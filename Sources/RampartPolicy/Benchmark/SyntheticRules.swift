/// The rule templates of a synthetic mesh, written as Istio YAML: principals, namespaces, request
/// principals, IP blocks, exact/prefix/suffix/template paths, methods, ports, hosts, and `when`
/// conditions on headers and JWT claims, with their `not` forms.
struct SyntheticRules {
    static let ingress = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"

    let target: SyntheticWorkload
    let callers: [SyntheticWorkload]
    let issuer: String?

    /// One ALLOW rule, picked from five shapes.
    func allow(random: inout SeededGenerator) -> String {
        let api = "/api/v1/\(target.resource)"
        switch random.index(5) {
        case 0:
            return """
                  - from: [{source: {principals: \(list(callers.map(\.principal)))}}]
                    to: [{operation: {methods: ["GET", "HEAD"], paths: ["\(api)*", "/healthz"]}}]
                """
        case 1:
            let namespaces = Array(Set(callers.map(\.namespace))).sorted()
            return """
                  - from: [{source: {namespaces: \(list(namespaces))}}]
                    to: [{operation: {methods: ["POST", "PUT"], paths: ["\(api)/{*}", "*.json"], ports: ["8080"]}}]
                """
        case 2:
            let principal = issuer.map { "\($0)/*" } ?? "https://accounts.example.com/*"
            return """
                  - from: [{source: {requestPrincipals: ["\(principal)"]}}]
                    to: [{operation: {hosts: ["\(target.host)", "*.example.com"]}}]
                    when: [{key: "request.auth.claims[groups]", values: ["admin", "ops", "dev"]}]
                """
        case 3:
            return """
                  - from: [{source: {principals: ["cluster.local/ns/monitoring/sa/prometheus", "\(Self.ingress)"]}}]
                    to: [{operation: {ports: ["9090", "8080"], paths: ["/metrics", "/stats/*"]}}]
                """
        default:
            let caller = callers[0]
            return """
                  - from: [{source: {principals: ["cluster.local/ns/\(caller.namespace)/sa/*"], notPrincipals: ["*-9"]}}]
                    when: [{key: "request.headers[x-tenant]", values: ["tenant-\(caller.app)", "tenant-shared"]}]
                """
        }
    }

    /// One DENY rule, picked from three shapes; HTTP fields go with a port so TCP is not denied.
    func deny(random: inout SeededGenerator) -> String {
        switch random.index(3) {
        case 0:
            return """
                  - from: [{source: {notNamespaces: ["\(target.namespace)", "istio-system"]}}]
                    to: [{operation: {methods: ["DELETE", "PATCH"], paths: ["/internal*", "*/admin"], ports: ["8080"]}}]
                """
        case 1:
            return """
                  - to: [{operation: {ports: ["8080"], paths: ["/api/v2*"], notHosts: ["*.internal.example.com"]}}]
                    when: [{key: "request.headers[x-canary]", values: ["true"]}]
                """
        default:
            return """
                  - from: [{source: {ipBlocks: ["192.0.2.0/24", "198.51.100.0/24"], notPrincipals: \(list(callers.map(\.principal)))}}]
                """
        }
    }

    /// An AUDIT rule for writes to the workload's API.
    func audit() -> String {
        """
          - to: [{operation: {methods: ["DELETE", "PATCH", "POST"], paths: ["/api/v1/\(target.resource)*"], ports: ["8080"]}}]
        """
    }

    /// A mesh-wide policy of the root namespace, cycling through five kinds.
    static func meshWide(_ index: Int, root: String) -> String {
        let (name, action, rules): (String, String, String)
        switch index % 5 {
        case 0:
            (name, action, rules) = (
                "deny-sensitive-paths", "DENY",
                """
                  - from: [{source: {notNamespaces: ["ops", "istio-system"]}}]
                    to: [{operation: {paths: ["/admin*", "*/.env", "*.php"], ports: ["8080"]}}]
                """
            )
        case 1:
            (name, action, rules) = (
                "audit-payment-writes", "AUDIT",
                """
                  - to: [{operation: {methods: ["POST", "PUT", "DELETE"], paths: ["/api/v1/payments*"], ports: ["8080"]}}]
                """
            )
        case 2:
            (name, action, rules) = (
                "deny-scanners", "DENY",
                """
                  - to: [{operation: {ports: ["8080"]}}]
                    when: [{key: "request.headers[user-agent]", values: ["sqlmap*", "*nikto", "masscan*"]}]
                """
            )
        case 3:
            (name, action, rules) = (
                "deny-blocked-networks", "DENY",
                """
                  - from: [{source: {remoteIpBlocks: ["203.0.113.0/24", "100.64.0.0/10"]}}]
                """
            )
        default:
            (name, action, rules) = (
                "deny-debug-endpoints", "DENY",
                """
                  - to: [{operation: {ports: ["8080"], paths: ["/debug/*", "*/pprof"]}}]
                    when: [{key: "request.auth.claims[groups]", notValues: ["sre"]}]
                """
            )
        }
        return document(name: "\(name)-\(index / 5)", namespace: root, action: action, rules: rules)
    }

    /// A namespace-wide policy: the first per namespace allows in-namespace, ingress and monitoring
    /// traffic; the second denies unauthenticated writes.
    static func namespaceWide(_ index: Int, namespace: String) -> String {
        if index % 2 == 0 {
            return document(
                name: "allow-namespace-\(index)", namespace: namespace, action: "ALLOW",
                rules: """
                      - from: [{source: {namespaces: ["\(namespace)"]}}]
                      - from: [{source: {principals: ["\(ingress)"]}}]
                        to: [{operation: {methods: ["GET", "POST"], ports: ["8080"]}}]
                      - from: [{source: {namespaces: ["monitoring"]}}]
                        to: [{operation: {paths: ["/metrics"], ports: ["9090"]}}]
                    """)
        }
        return document(
            name: "deny-anonymous-writes-\(index)", namespace: namespace, action: "DENY",
            rules: """
                  - from: [{source: {notPrincipals: ["*"]}}]
                    to: [{operation: {methods: ["POST", "PUT", "DELETE", "PATCH"]}}]
                """)
    }

    private static func document(name: String, namespace: String, action: String, rules: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
          action: \(action)
          rules:
        \(rules)
        """
    }

    private func list(_ values: [String]) -> String {
        "[" + values.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
    }
}
