import Foundation
import Testing

/// The whole loop with real processes on loopback: a CA, two agents, two proxies and two echo
/// applications. Requests go from application A's side through proxy A's outbound listener,
/// over mTLS, to proxy B's inbound listener and application B. curl and openssl are the clients.
@Suite("Companion proxy end to end", .serialized)
struct ProxyEndToEndTests {
    static let namespace = "demo"

    /// Runs `body` with a fresh mesh, and stops every process afterwards.
    func withMesh(_ body: (Mesh) async throws -> Void) async throws {
        let mesh = try await Mesh()
        do {
            try await body(mesh)
        } catch {
            await mesh.stop()
            throw error
        }
        await mesh.stop()
    }

    /// The sum of a counter's series a destination reported, in Prometheus's text format.
    static func total(_ metrics: String, _ name: String) -> Int {
        metrics.split(separator: "\n").filter { $0.hasPrefix("\(name){") && $0.contains("reporter=\"destination\"") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0) { $0 + Int($1) }
    }

    final class Mesh: @unchecked Sendable {
        let directory: String
        let ca: CAProcess
        let a: MeshWorkload
        let b: MeshWorkload

        init() async throws {
            let ca = try await offPool {
                let ca = try CAProcess(label: "proxy-e2e")
                try ca.start()
                return ca
            }
            self.ca = ca
            directory = ca.directory
            a = try await MeshWorkload.start(name: "a", namespace: ProxyEndToEndTests.namespace, ca: ca, directory: directory)
            // B's proxy reads its identity from the agent's SPIFFE Workload API, A's from the agent's files.
            b = try await MeshWorkload.start(name: "b", namespace: ProxyEndToEndTests.namespace, ca: ca, directory: directory, workloadAPI: true)
            // Ready once each proxy has its identity and config, and A's registry knows B.
            let (a, b) = (self.a, self.b)
            try await eventuallyAsync(timeout: 30, "both proxies ready\n\(a.proxy.log)\n\(b.proxy.log)") {
                let readyA = try await Curl.get("http://127.0.0.1:\(a.admin)/healthz/ready").code == 200
                let readyB = try await Curl.get("http://127.0.0.1:\(b.admin)/healthz/ready").code == 200
                return readyA && readyB
            }
            try await eventuallyAsync(timeout: 30, "a request from A to B\n\(a.proxy.log)\n\(b.proxy.log)\n\(ca.log)") {
                try await Curl.get("http://127.0.0.1:\(a.outbound)/", ["-H", "Host: b"]).code == 200
            }
        }

        func apply(_ yaml: String, name: String) async throws {
            let file = "\(directory)/\(name).yaml"
            try yaml.write(toFile: file, atomically: true, encoding: .utf8)
            let result = try await rampartAsync("apply", "-f", file, "--state", ca.state)
            guard result.succeeded else { throw TestFailure("rampart apply failed: \(result.stderr)") }
        }

        func delete(_ kind: String, _ name: String) async throws {
            let result = try await rampartAsync("delete", kind, name, "-n", ProxyEndToEndTests.namespace, "--state", ca.state)
            guard result.succeeded else { throw TestFailure("rampart delete failed: \(result.stderr)") }
        }

        /// curl through A's outbound listener to service B.
        func callB(_ path: String = "/") async throws -> (code: Int, body: String, exit: Int32) {
            try await Curl.get("http://127.0.0.1:\(a.outbound)\(path)", ["-H", "Host: b"])
        }

        /// Seconds until `condition` first holds, polling every 50 ms for at most `limit` seconds.
        func secondsUntil(limit: TimeInterval = 5, _ condition: () async throws -> Bool) async throws -> TimeInterval? {
            let start = Date()
            while Date().timeIntervalSince(start) < limit {
                if try await condition() { return Date().timeIntervalSince(start) }
                try await Task.sleep(for: .milliseconds(50))
            }
            return nil
        }

        func stop() async {
            let (a, b, ca) = (self.a, self.b, self.ca)
            _ = try? await offPool {
                a.stop()
                b.stop()
                ca.stop()
            }
        }
    }

    @Test("A calls B through both proxies over mTLS; a DENY policy takes effect within 1 s and its removal restores 200")
    func policyLoop() async throws {
        try await withMesh { mesh in

            let first = try await mesh.callB("/hello?x=1")
            #expect(first.code == 200)
            let echo = Curl.json(first.body)
            #expect(echo["app"] as? String == "b")
            #expect(echo["path"] as? String == "/hello?x=1")
            let headers = echo["headers"] as? [String: String] ?? [:]
            #expect(headers["x-forwarded-client-cert"]?.contains("URI=\(mesh.a.spiffeID)") == true, "\(headers)")
            #expect(headers["x-request-id"]?.isEmpty == false)

            // The http_proxy form reaches the same service by its fully qualified name.
            let viaProxy = try await Curl.get("http://b.demo.svc.cluster.local:\(mesh.b.appPort)/proxied", ["-x", "http://127.0.0.1:\(mesh.a.outbound)"])
            #expect(viaProxy.code == 200)
            #expect(Curl.json(viaProxy.body)["path"] as? String == "/proxied")

            try await mesh.apply(
                """
                apiVersion: security.istio.io/v1
                kind: AuthorizationPolicy
                metadata:
                  name: deny-a
                  namespace: demo
                spec:
                  selector:
                    matchLabels:
                      app: b
                  action: DENY
                  rules:
                  - from:
                    - source:
                        principals: ["cluster.local/ns/demo/sa/a"]
                """, name: "deny-a")
            let denied = try await mesh.secondsUntil { try await mesh.callB().code == 403 }
            #expect(denied != nil, "the DENY policy never took effect\n\(mesh.b.proxy.log)")
            #expect((denied ?? 99) <= 1.0, "the DENY policy took \(denied ?? 0) s to take effect")
            let body = try await mesh.callB().body
            #expect(body.contains("RBAC: access denied"))

            try await mesh.delete("AuthorizationPolicy", "deny-a")
            let restored = try await mesh.secondsUntil { try await mesh.callB().code == 200 }
            #expect(restored != nil, "removing the policy never restored 200")
            #expect((restored ?? 99) <= 1.0, "removing the policy took \(restored ?? 0) s to take effect")

            // A dry-run DENY is not enforced; its would-be denial is counted as Envoy's shadow
            // engine counts it, under the name Istio's dry-run task reads.
            try await mesh.apply(
                """
                apiVersion: security.istio.io/v1
                kind: AuthorizationPolicy
                metadata:
                  name: deny-dry
                  namespace: demo
                  annotations: {istio.io/dry-run: "true"}
                spec:
                  selector: {matchLabels: {app: b}}
                  action: DENY
                  rules: [{to: [{operation: {paths: ["/dry"]}}]}]
                """, name: "deny-dry")
            try await eventuallyAsync(timeout: 10, "the dry-run DENY to be counted\n\(mesh.b.proxy.log)") {
                guard try await mesh.callB("/dry").code == 200 else { return false }
                let metrics = try await Curl.get("http://127.0.0.1:\(mesh.b.admin)/stats/prometheus").body
                return metrics.split(separator: "\n").contains { $0.hasPrefix("envoy_http_rbac_istio_dry_run_deny_shadow_denied ") }
            }
            try await mesh.delete("AuthorizationPolicy", "deny-dry")

            // The access log names the policy that denied (lines are written at least once a second).
            var log = ""
            try await eventually(timeout: 5, "the denied request's access-log line") {
                log = (try? String(contentsOfFile: mesh.b.accessLog, encoding: .utf8)) ?? ""
                return log.contains("\"response_code\":403")
            }
            let deniedLine = log.split(separator: "\n").first { $0.contains("\"response_code\":403") }
            // A response the application sent is logged as Envoy logs it: via_upstream.
            let allowedLine = log.split(separator: "\n").first { $0.contains("\"response_code\":200") }
            #expect(allowedLine?.contains("\"response_code_details\":\"via_upstream\"") == true, "\(String(describing: allowedLine))")
            #expect(deniedLine?.contains("\"authz_policy\":\"demo/deny-a\"") == true, "\(log)")
            // As Envoy's RBAC filter reports a denial: no response flag, the rule named in the details.
            #expect(deniedLine?.contains("\"response_flags\":\"-\"") == true, "\(String(describing: deniedLine))")
            #expect(deniedLine?.contains("rbac_access_denied_matched_policy[ns[demo]-policy[deny-a]-rule[0]]") == true, "\(String(describing: deniedLine))")

            // A real Prometheus server scrapes both proxies' Istio metrics.
            let prometheus = try await PrometheusProcess(directory: mesh.directory, scrapePorts: [mesh.a.admin, mesh.b.admin])
            defer { prometheus.stop() }
            var series: [[String: String]] = []
            try await eventuallyAsync(timeout: 30, "Prometheus to scrape istio_requests_total\n\(prometheus.service.log)") {
                series = try await prometheus.query("istio_requests_total{reporter=\"destination\"}")
                let sources = try await prometheus.query("istio_requests_total{reporter=\"source\"}")
                return series.contains { $0["response_code"] == "403" } && !sources.isEmpty
            }
            let allowed = series.first { $0["response_code"] == "200" } ?? [:]
            for label in ["reporter", "source_principal", "destination_principal", "destination_service", "response_code", "response_flags", "connection_security_policy"] {
                #expect(allowed[label] != nil, "istio_requests_total lacks the \(label) label: \(allowed)")
            }
            #expect(allowed["source_principal"] == mesh.a.spiffeID)
            #expect(allowed["destination_principal"] == mesh.b.spiffeID)
            #expect(allowed["destination_service"] == "b.demo.svc.cluster.local")
            #expect(allowed["connection_security_policy"] == "mutual_tls")
            #expect(allowed["source_workload"] == "a")
            #expect(series.contains { $0["response_code"] == "403" && $0["response_flags"] == "-" })
            // Istio's canonical service labels, which Kiali groups by.
            #expect(allowed["source_canonical_service"] == "a" && allowed["destination_canonical_service"] == "b", "\(allowed)")
            #expect(allowed["source_canonical_revision"] == "v1" && allowed["request_protocol"] == "http", "\(allowed)")
            let outbound = try await prometheus.query("istio_requests_total{reporter=\"source\"}")
            #expect(outbound.contains { $0["destination_workload"] == "b" && $0["source_principal"] == mesh.a.spiffeID })
            // Istio's source reports cannot know the server's authentication policy.
            #expect(outbound.allSatisfy { $0["connection_security_policy"] == "unknown" }, "\(outbound)")
            #expect(!(try await prometheus.query("istio_request_duration_milliseconds_bucket")).isEmpty)

            // A host outside the registry goes through under ALLOW_ANY, labelled as Istio labels
            // it: the host as the service, PassthroughCluster as its name.
            let outside = "127.0.0.1:\(mesh.b.appPort)"
            #expect(try await Curl.get("http://127.0.0.1:\(mesh.a.outbound)/", ["-H", "Host: \(outside)"]).code == 200)
            let passthrough = try await Curl.get("http://127.0.0.1:\(mesh.a.admin)/stats/prometheus").body
            let line = passthrough.split(separator: "\n").first { $0.hasPrefix("istio_requests_total{") && $0.contains("destination_service=\"127.0.0.1\"") }
            #expect(line?.contains("destination_service_name=\"PassthroughCluster\"") == true, "\(passthrough)")

            // rampart status lists both proxies, synced.
            let status = try await rampartAsync("status", "--admin", "127.0.0.1:\(mesh.ca.adminPort)")
            #expect(status.succeeded, "\(status.stderr)")
            #expect(status.stdout.contains("a.demo") && status.stdout.contains("b.demo"), "\(status.stdout)")
        }
    }

    @Test("grpcio's streaming calls stream through both proxies: ping-pong, a server stream, and an upload past the body limit")
    func grpcStreaming() async throws {
        try await withMesh { mesh in
            let g = try await MeshWorkload.start(
                name: "g", namespace: Self.namespace, ca: mesh.ca, directory: mesh.directory, app: "grpc_stream_app.py")
            do {
                let client = Paths.interop.appendingPathComponent("grpc_stream_client.py").path
                let outbound = mesh.a.outbound
                let result = try await offPool {
                    try run("python3", [client, "127.0.0.1:\(outbound)", "g", "--wait", "30"], timeout: 120)
                }
                let calls = try #require(
                    (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any], "\(result.stdout)\n\(result.stderr)")
                // The client sends each ping only once the pong before it has arrived.
                #expect(calls["pingpong"] as? [String] == ["pong: ping 1", "pong: ping 2", "pong: ping 3"], "\(calls)\n\(g.proxy.log)")
                let countdown = calls["countdown"] as? [String: Any]
                #expect(countdown?["messages"] as? [String] == ["tick 3", "tick 2", "tick 1"], "\(calls)")
                // Sent 0.4 s apart, the ticks arrive apart, not together at the call's end.
                #expect((countdown?["spread"] as? Double ?? 0) > 0.5, "\(calls)")
                #expect(calls["upload"] as? String == "\(20 * 1024 * 1024) bytes in 20 messages", "\(calls)")

                // Each call is logged once it ends, with its gRPC status and the bytes relayed.
                var log = ""
                try await eventually(timeout: 5, "the upload's access-log line") {
                    log = (try? String(contentsOfFile: g.accessLog, encoding: .utf8)) ?? ""
                    return log.contains("/test.Stream/Upload")
                }
                let upload = log.split(separator: "\n").first { $0.contains("/test.Stream/Upload") } ?? ""
                let metrics = try await Curl.get("http://127.0.0.1:\(g.admin)/stats/prometheus").body
                let grpcOK = metrics.split(separator: "\n").contains {
                    $0.hasPrefix("istio_requests_total{") && $0.contains("grpc_response_status=\"0\"") && $0.contains("request_protocol=\"grpc\"")
                }
                #expect(grpcOK, "\(metrics)")
                // Istio's message counters: 3 pings, 1 countdown request and 20 upload messages in;
                // 3 pongs, 3 ticks and 1 upload answer out; labelled without the calls' outcome.
                #expect(Self.total(metrics, "istio_request_messages_total") == 24, "\(metrics)")
                #expect(Self.total(metrics, "istio_response_messages_total") == 7, "\(metrics)")
                #expect(!metrics.split(separator: "\n").contains { $0.hasPrefix("istio_request_messages_total{") && $0.contains("response_code") }, "\(metrics)")
                #expect(upload.contains("\"response_code\":200"), "\(upload)")
                let received = (try? JSONSerialization.jsonObject(with: Data(upload.utf8)) as? [String: Any])?["bytes_received"] as? Int ?? 0
                #expect(received > 20 * 1024 * 1024, "\(upload)")
            } catch {
                _ = try? await offPool { g.stop() }
                throw error
            }
            _ = try? await offPool { g.stop() }
        }
    }

    @Test("a destination whose PeerAuthentication is DISABLE is called in plaintext, as Istio's auto mTLS calls it; STRICT again brings mTLS back")
    func disabledDestination() async throws {
        try await withMesh { mesh in
            // The inbound side's log line for a request to B: how the connection was secured.
            func securityOfCall(_ path: String) async throws -> String? {
                var line: Substring?
                try await eventually(timeout: 5, "the access-log line of \(path)") {
                    let log = (try? String(contentsOfFile: mesh.b.accessLog, encoding: .utf8)) ?? ""
                    line = log.split(separator: "\n").last { $0.contains("\"path\":\"\(path)\"") && $0.contains("\"reporter\":\"destination\"") }
                    return line != nil
                }
                guard let line, let record = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
                return record["connection_security_policy"] as? String
            }
            #expect(try await securityOfCall("/") == "mutual_tls")

            // B's proxy then takes plaintext only; A, told so by the control plane, stops
            // originating mTLS to it (a pooled mTLS connection is not reused for it).
            try await mesh.apply(
                """
                apiVersion: security.istio.io/v1
                kind: PeerAuthentication
                metadata: {name: default, namespace: demo}
                spec: {mtls: {mode: DISABLE}}
                """, name: "disable")
            try await eventuallyAsync(timeout: 5, "a plaintext call from A to B\n\(mesh.a.proxy.log)\n\(mesh.b.proxy.log)") {
                guard try await mesh.callB("/disabled").code == 200 else { return false }
                return try await securityOfCall("/disabled") == "none"
            }
            let plain = try await mesh.callB("/disabled-again")
            #expect(plain.code == 200, "\(plain)")
            #expect(try await securityOfCall("/disabled-again") == "none")

            try await mesh.apply(
                """
                apiVersion: security.istio.io/v1
                kind: PeerAuthentication
                metadata: {name: default, namespace: demo}
                spec: {mtls: {mode: STRICT}}
                """, name: "disable")
            try await eventuallyAsync(timeout: 5, "an mTLS call from A to B\n\(mesh.a.proxy.log)\n\(mesh.b.proxy.log)") {
                guard try await mesh.callB("/strict").code == 200 else { return false }
                return try await securityOfCall("/strict") == "mutual_tls"
            }
        }
    }

    @Test("STRICT refuses plaintext; curl and openssl interoperate over mTLS; a revoked client certificate is refused")
    func peerAuthenticationAndRevocation() async throws {
        try await withMesh { mesh in
            let inbound = "127.0.0.1:\(mesh.b.inbound)"
            let cert = "\(mesh.a.identityDirectory)/cert-chain.pem"
            let key = "\(mesh.a.identityDirectory)/key.pem"
            let root = "\(mesh.a.identityDirectory)/root-cert.pem"

            // PERMISSIVE (no PeerAuthentication): plaintext is accepted on the inbound port.
            #expect(try await Curl.get("http://\(inbound)/plain").code == 200)

            try await mesh.apply(
                """
                apiVersion: security.istio.io/v1
                kind: PeerAuthentication
                metadata:
                  name: default
                  namespace: demo
                spec:
                  mtls:
                    mode: STRICT
                """, name: "strict")
            let refused = try await mesh.secondsUntil { try await Curl.get("http://\(inbound)/plain").code == 0 }
            #expect(refused != nil, "plaintext was still accepted under STRICT\n\(mesh.b.proxy.log)")
            #expect((refused ?? 99) <= 1.0)

            // curl presenting A's certificate. The SVID names no DNS host, so curl's host-name check is
            // off (-k); the proxy still requires and verifies the client certificate.
            let mtls = try await Curl.get("https://\(inbound)/curl", ["-k", "--cert", cert, "--key", key])
            #expect(mtls.code == 200, "\(mtls)")
            #expect((Curl.json(mtls.body)["headers"] as? [String: String])?["x-forwarded-client-cert"]?.contains("URI=\(mesh.a.spiffeID)") == true)
            let noCert = try await Curl.get("https://\(inbound)/curl", ["-k"])
            #expect(noCert.code == 0, "a client without a certificate was answered")

            // openssl verifies B's chain against the trust bundle and completes the mutual handshake.
            let sclient = try await offPool { try run("openssl", ["s_client", "-connect", inbound, "-CAfile", root, "-cert", cert, "-key", key, "-verify_return_error", "-brief"], input: "", timeout: 20) }
            let sclientText = sclient.stdout + sclient.stderr
            #expect(sclientText.contains("Verification: OK"), "\(sclientText)")
            #expect(sclientText.contains("spiffe://cluster.local/ns/demo/sa/b") || sclient.succeeded, "\(sclientText)")

            // Revoke A's certificate: a new connection presenting it is refused within 1 s.
            guard let serial = mesh.a.agent.onDisk()?.serial else { throw TestFailure("A has no certificate on disk") }
            let revoke = try await rampartAsync("cert", "revoke", "--state", mesh.ca.state, serial)
            #expect(revoke.succeeded, "\(revoke.stderr)")
            let revoked = try await mesh.secondsUntil { try await Curl.get("https://\(inbound)/curl", ["-k", "--cert", cert, "--key", key]).code == 0 }
            #expect(revoked != nil, "the revoked certificate was still accepted\n\(mesh.b.proxy.log)")
            #expect((revoked ?? 99) <= 1.0, "revocation took \(revoked ?? 0) s to reach the proxy")
        }
    }

    @Test("a client that resumes its TLS session keeps its identity: STRICT admits it, policies and x-forwarded-client-cert see it")
    func resumedSessions() async throws {
        try await withMesh { mesh in
            let inbound = "127.0.0.1:\(mesh.b.inbound)"
            let directory = mesh.a.identityDirectory
            try await mesh.apply(
                """
                apiVersion: security.istio.io/v1
                kind: PeerAuthentication
                metadata: {name: default, namespace: demo}
                spec: {mtls: {mode: STRICT}}
                ---
                apiVersion: security.istio.io/v1
                kind: AuthorizationPolicy
                metadata: {name: only-a, namespace: demo}
                spec:
                  action: ALLOW
                  rules:
                  - from: [{source: {principals: ["cluster.local/ns/demo/sa/a"]}}]
                """, name: "strict-only-a")
            #expect(try await mesh.secondsUntil { try await Curl.get("http://\(inbound)/plain").code == 0 } != nil)
            let client = Paths.interop.appendingPathComponent("tls_resume_client.py").path
            for version in ["1.3", "1.2"] {
                let result = try await offPool {
                    try run("python3", [client, inbound, "\(directory)/cert-chain.pem", "\(directory)/key.pem", "\(directory)/root-cert.pem", "/resumed", version], timeout: 60)
                }
                let lines = result.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                try #require(lines.count == 2, "TLS \(version): \(result.stdout)\(result.stderr)\n\(mesh.b.proxy.log)")
                #expect(lines[0]["reused"] as? Bool == false)
                #expect(lines[1]["reused"] as? Bool == true, "TLS \(version): the second connection made a full handshake, so resumption went untested")
                for (index, line) in lines.enumerated() {
                    #expect(line["status"] as? Int == 200, "TLS \(version), connection \(index + 1): \(line)\n\(mesh.b.proxy.log)")
                    let headers = (line["body"] as? String).flatMap { Curl.json($0)["headers"] as? [String: String] }
                    #expect(headers?["x-forwarded-client-cert"]?.contains("URI=\(mesh.a.spiffeID)") == true, "TLS \(version), connection \(index + 1): \(line)")
                }
            }
        }
    }

    @Test("a proxy that loses the control plane keeps enforcing its last snapshot, and reconnects when it is back")
    func controlPlaneLoss() async throws {
        try await withMesh { mesh in
            try await mesh.apply(
                """
                apiVersion: security.istio.io/v1
                kind: AuthorizationPolicy
                metadata:
                  name: deny-secret
                  namespace: demo
                spec:
                  action: DENY
                  rules:
                  - to:
                    - operation:
                        paths: ["/secret"]
                """, name: "deny-secret")
            #expect(try await mesh.secondsUntil { try await mesh.callB("/secret").code == 403 } != nil)

            let port = mesh.ca.grpcPort
            let ca = mesh.ca
            try await offPool { ca.kill9() }
            // Enforcement goes on without the control plane.
            for _ in 0..<5 {
                #expect(try await mesh.callB("/secret").code == 403)
                #expect(try await mesh.callB("/open").code == 200)
                try await Task.sleep(for: .milliseconds(200))
            }
            try await offPool { try ca.start(grpcPort: port) }
            try await eventuallyAsync(timeout: 30, "both proxies to reconnect\n\(mesh.a.proxy.log)") {
                let status = try await rampartAsync("status", "--admin", "127.0.0.1:\(mesh.ca.adminPort)", "--json")
                return status.succeeded && status.stdout.components(separatedBy: "\"connected\"").count - 1 >= 2
            }
            #expect(try await mesh.callB("/secret").code == 403)
            #expect(try await mesh.callB("/open").code == 200)

            // pilot-agent's /quitquitquit, as a Kubernetes Job calls it: the proxy exits, cleanly.
            let quitURL = "http://127.0.0.1:\(mesh.a.admin)/quitquitquit"
            #expect(try await Curl.get(quitURL).code == 405)
            #expect(mesh.a.proxy.process.isRunning)
            let quit = try await Curl.get(quitURL, ["-X", "POST"])
            #expect(quit.code == 200 && quit.body == "OK", "\(quit)")
            let proxy = mesh.a.proxy.process
            try await eventuallyAsync(timeout: 15, "the proxy to exit after /quitquitquit\n\(mesh.a.proxy.log)") { !proxy.isRunning }
            #expect(proxy.terminationStatus == 0, "\(mesh.a.proxy.log)")
        }
    }
}

@Suite("rampart proxy settings")
struct ProxySettingsTests {
    @Test("the proxy refuses bad settings with a message naming the option and what to give")
    func refusals() async throws {
        let base = ["proxy", "--workload", "w", "--namespace", "demo", "--app", "127.0.0.1:8080", "--ca-root", "/nonexistent/root.pem"]
        let cases: [([String], String)] = [
            (base, "--identity-dir"),
            (base + ["--identity-dir", "/tmp", "--workload-api", "/tmp/s.sock"], "exactly one identity source"),
            (base + ["--identity-dir", "/tmp", "--service", "reviews"], "NAME:PORT"),
            (base + ["--identity-dir", "/tmp", "--labels", "app"], "key=value"),
            (base + ["--identity-dir", "/tmp", "--inbound", "15006"], "--inbound"),
            (base + ["--identity-dir", "/tmp", "--outbound-traffic-policy", "OPEN"], "ALLOW_ANY or REGISTRY_ONLY"),
            (base + ["--identity-dir", "/tmp", "--app-protocol", "h3"], "auto, http, http2, grpc-web or tcp"),
            (base + ["--identity-dir", "/tmp", "--app-protocol", "tcp", "--max-body-bytes", "0"], "--max-body-bytes must be positive"),
            (base + ["--identity-dir", "/tmp", "--event-loops", "0"], "--event-loops"),
            (base + ["--identity-dir", "/tmp", "--tcp-reporting-duration", "0"], "give 1 to 86400 seconds"),
            (base + ["--identity-dir", "/tmp", "--outbound-tcp", "db:5432"], "LOCAL=SERVICE:PORT"),
            (base + ["--identity-dir", "/tmp", "--outbound-tcp", "127.0.0.1:15001=db:5432"], "name the same address"),
            // grpc-web is an application protocol: the check after it is the one that fails.
            (base + ["--identity-dir", "/tmp", "--app-protocol", "grpc-web", "--max-body-bytes", "0"], "--max-body-bytes must be positive"),
            (base + ["--identity-dir", "/tmp"], "--ca-root /nonexistent/root.pem"),
            (["proxy", "--workload", "Bad_Name", "--namespace", "demo", "--app", "127.0.0.1:1", "--ca-root", "x", "--identity-dir", "/tmp"], "--workload"),
        ]
        for (arguments, expected) in cases {
            let result = try await offPool { try run(Paths.rampart, arguments, timeout: 30) }
            #expect(!result.succeeded, "accepted: \(arguments)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
    }
}
