import RampartPolicy

/// Builds engines and requests for unit tests.
enum Fixture {
    static func engine(_ yaml: String, root: String = "istio-system") -> PolicyEngine {
        PolicyEngine(yaml: yaml, options: SnapshotOptions(rootNamespace: root))
    }

    static func http(
        principal: String? = "cluster.local/ns/ns1/sa/a", namespace: String = "ns1", labels: [String: String] = ["app": "b"],
        port: Int = 8080, method: String = "GET", path: String = "/", host: String = "b.ns1", headers: [String: String] = [:],
        jwt: JWTOutcome? = nil, extAuthz: AuthzRequest.ExtAuthzAnswer? = nil
    ) -> AuthzRequest {
        AuthzRequest(
            transport: .http, source: AuthzRequest.Source(principal: principal),
            destination: AuthzRequest.Destination(namespace: namespace, labels: labels, port: port), method: method,
            host: host, path: path, headers: headers, extAuthz: extAuthz, jwt: jwt)
    }

    static func tcp(principal: String? = "cluster.local/ns/ns1/sa/a", port: Int = 9000, labels: [String: String] = ["app": "b"])
        -> AuthzRequest
    {
        AuthzRequest(
            transport: .tcp, source: AuthzRequest.Source(principal: principal),
            destination: AuthzRequest.Destination(namespace: "ns1", labels: labels, port: port))
    }

    static func policy(_ name: String, action: String = "ALLOW", namespace: String = "ns1", extra: String = "", rules: String)
        -> String
    {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: \(name), namespace: \(namespace)\(extra)}
        spec:
          action: \(action)
          rules:
        \(rules)
        """
    }

    /// A RequestAuthentication for every workload of `namespace`, one `jwtRules` entry per line of
    /// flow-style YAML in `rules`, as a document to append to others.
    static func requestAuthentication(_ rules: [String], namespace: String = "ns1") -> String {
        """

        ---
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: \(namespace)}
        spec:
          jwtRules:
        \(rules.map { "  - \($0)" }.joined(separator: "\n"))
        """
    }
}
