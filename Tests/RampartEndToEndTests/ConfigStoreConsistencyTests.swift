import Foundation
import Testing

/// What the config store holds, measured against what else says it: a cluster's export and
/// `get -o json` applied back, the audit log, and the policies already stored.
@Suite("config commands: the store against exports, the audit log and stored policies")
struct ConfigStoreConsistencyTests {
    @Test("a change to labels or annotations alone is configured and keeps the generation; a spec change raises it")
    func metadataOnlyChange() throws {
        let ca = try CAProcess(label: "config-metadata")
        let file = "\(ca.directory)/deny.yaml"
        try ConfigCommandTests.write(file, action: "DENY", paths: "[/admin]")
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        let original = try String(contentsOfFile: file, encoding: .utf8)
        let labelled = original.replacingOccurrences(
            of: "namespace: shop}", with: "namespace: shop, labels: {team: web}, annotations: {owner: sre}}")
        #expect(labelled != original, "the test's document must gain labels")
        try labelled.write(toFile: file, atomically: true, encoding: .utf8)
        let relabelled = try rampart("apply", "-f", file, "--state", ca.state)
        #expect(relabelled.stdout == "authorizationpolicy.security.istio.io shop/deny-admin configured\nconfig version 2\n", "\(relabelled.stdout)\(relabelled.stderr)")
        func generation() throws -> Int? {
            let json = try rampart("get", "ap", "deny-admin", "-n", "shop", "--json", "--state", ca.state)
            let items = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
            return items?.first?["generation"] as? Int
        }
        #expect(try generation() == 1)
        try ConfigCommandTests.write(file, action: "DENY", paths: "[/admin, /debug]")
        let changed = try rampart("apply", "-f", file, "--state", ca.state)
        #expect(changed.stdout.contains("configured\nconfig version 3\n"), "\(changed.stdout)\(changed.stderr)")
        #expect(try generation() == 2)
    }

    @Test("what get -o json prints, or a cluster's export with its server fields, applies back unchanged; -o json shows this store's generation")
    func serverFields() throws {
        let ca = try CAProcess(label: "config-server-fields")
        let file = "\(ca.directory)/p.yaml"
        try ConfigCommandTests.write(file, action: "DENY", paths: "[/admin]")
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        for _ in 0..<2 {
            let json = try rampart("get", "ap", "deny-admin", "-n", "shop", "-o", "json", "--state", ca.state)
            #expect(json.succeeded && json.stdout.contains("\"generation\" : 1"), "\(json.stdout)")
            let again = try run(Paths.rampart, ["apply", "-f", "-", "--state", ca.state], input: json.stdout)
            #expect(again.stdout.hasSuffix("config version 1 (nothing changed)\n"), "\(again.stdout)\(again.stderr)")
        }
        // An export from a cluster: server fields, the last applied configuration, status, v1beta1, an empty namespace field
        // beside -n, all say the same policy.
        try """
            apiVersion: security.istio.io/v1beta1
            kind: AuthorizationPolicy
            metadata:
              annotations:
                kubectl.kubernetes.io/last-applied-configuration: '{"spec":{}}'
              creationTimestamp: "2024-01-01T00:00:00Z"
              generation: 7
              name: deny-admin
              namespace: ""
              resourceVersion: "12345"
              uid: 0b0e3d2c-1111-2222-3333-444455556666
              managedFields: [{manager: kubectl, operation: Update}]
            spec:
              action: DENY
              rules:
              - to: [{operation: {ports: ["8080"], paths: [/admin]}}]
            status: {}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let exported = try rampart("apply", "-f", file, "-n", "shop", "--state", ca.state)
        #expect(exported.stdout == "authorizationpolicy.security.istio.io shop/deny-admin unchanged\nconfig version 1 (nothing changed)\n", "\(exported.stdout)\(exported.stderr)")
    }

    @Test("a stored export's creationTimestamp is not content: get -o yaml applied back, the export again and the clean source are unchanged")
    func storedCreationTimestamp() throws {
        let ca = try CAProcess(label: "config-created")
        let clean = "\(ca.directory)/clean.yaml"
        try ConfigCommandTests.write(clean, action: "DENY", paths: "[/admin]")
        let source = try String(contentsOfFile: clean, encoding: .utf8)
        let export = "\(ca.directory)/export.yaml"
        try source.replacingOccurrences(of: "namespace: shop}", with: "namespace: shop, creationTimestamp: \"2020-01-01T00:00:00Z\"}")
            .write(toFile: export, atomically: true, encoding: .utf8)
        #expect(try String(contentsOfFile: export, encoding: .utf8).contains("2020-01-01"), "the export must carry a timestamp")
        #expect(try rampart("apply", "-f", export, "--state", ca.state).succeeded)
        let unchanged = "authorizationpolicy.security.istio.io shop/deny-admin unchanged\nconfig version 1 (nothing changed)\n"
        let printed = try rampart("get", "ap", "deny-admin", "-n", "shop", "-o", "yaml", "--state", ca.state)
        #expect(printed.succeeded && !printed.stdout.contains("2020-01-01"), "get prints the store's own time: \(printed.stdout)")
        let back = try run(Paths.rampart, ["apply", "-f", "-", "--state", ca.state], input: printed.stdout)
        #expect(back.stdout == unchanged, "\(back.stdout)\(back.stderr)")
        for file in [export, clean] {
            let again = try rampart("apply", "-f", file, "--state", ca.state)
            #expect(again.stdout == unchanged, "\(file): \(again.stdout)\(again.stderr)")
        }
    }

    /// `audit verify` on a copy of `ca`'s state whose store `sql` changed behind Rampart's back.
    static func auditVerify(copyOf ca: CAProcess, as label: String, after sql: String) throws -> CommandResult {
        let copy = "\(ca.directory)/\(label)"
        try FileManager.default.copyItem(atPath: ca.state, toPath: copy)
        let edit = try run("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", "\(copy)/rampart.sqlite", sql])
        #expect(edit.succeeded, "\(edit.stderr)")
        return try rampart("audit", "verify", "--state", copy)
    }

    @Test("audit verify finds events cut from the log's end and config rows changed without an event")
    func auditAgainstStore() throws {
        let ca = try CAProcess(label: "config-audit")
        let file = "\(ca.directory)/p.yaml"
        try ConfigCommandTests.write(file, action: "DENY", paths: "[/admin]")
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        try ConfigCommandTests.write(file, action: "DENY", paths: "[/admin, /debug]")
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        let intact = try rampart("audit", "verify", "--state", ca.state)
        #expect(intact.succeeded && intact.stdout.contains("config store matches the audit log"), "\(intact.stdout)")

        func tampered(_ label: String, _ sql: String) throws -> CommandResult { try Self.auditVerify(copyOf: ca, as: label, after: sql) }
        // The last event cut: the chain still links, but the config version has no event.
        let cut = try tampered("cut", "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events);")
        #expect(cut.status == 1 && cut.stdout.contains("audit events were removed"), "\(cut.stdout)")
        // A document edited and another added in the store's tables, with no event.
        let edited = try tampered(
            "edited",
            """
            UPDATE config_resources SET yaml = replace(yaml, 'DENY', 'ALLOW');
            INSERT INTO config_resources (kind, namespace, name, generation, yaml, created_at, updated_at)
              SELECT kind, 'istio-system', 'sneaky', 1, yaml, created_at, updated_at FROM config_resources;
            """)
        #expect(edited.status == 1, "\(edited.stdout)")
        #expect(edited.stdout.contains("shop/deny-admin's stored document is not the one its last audit event"), "\(edited.stdout)")
        #expect(edited.stdout.contains("istio-system/sneaky is stored, but no audit event records it"), "\(edited.stdout)")
    }

    @Test("audit verify finds certificates and tokens changed without an event: un-revoked, un-spent, re-assigned, added, removed, expiry or key changed")
    func auditAgainstIssuance() throws {
        let ca = try CAProcess(label: "issuance-audit")
        let id = "spiffe://cluster.local/ns/a/sa/b"
        let token = try rampart("token", "create", "--state", ca.state, "--spiffe-id", id).trimmedOutput
        try ca.start()
        let (csr, _) = try OpenSSL.csr(in: ca.directory, name: "w")
        let issued = try run(Paths.rampart, ["cert", "request", "--ca", "127.0.0.1:\(ca.grpcPort)", "--root-cert", ca.rootPath, "--csr", csr, "--token", token], timeout: 30)
        try #require(issued.succeeded, "\(issued.stderr)")
        ca.stop()
        let signed = try rampart("cert", "sign", "--state", ca.state, "--csr", csr, "--spiffe-id", id)
        try #require(signed.succeeded)
        let list = try rampart("cert", "list", "--state", ca.state, "--spiffe-id", id, "--json")
        let serials = (try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []).compactMap { $0["serial"] as? String }
        try #require(serials.count == 2, "\(list.stdout)")
        #expect(try rampart("cert", "revoke", "--state", ca.state, serials[0], "--reason", "keyCompromise").succeeded)
        let intact = try rampart("audit", "verify", "--state", ca.state)
        #expect(intact.succeeded && intact.stdout.contains("certificates and tokens match the audit log"), "\(intact.stdout)")

        func tampered(_ label: String, _ sql: String) throws -> CommandResult { try Self.auditVerify(copyOf: ca, as: label, after: sql) }
        let cases: [(label: String, sql: String, says: String)] = [
            ("unrevoked", "UPDATE issued_certificates SET status = 'active', revoked_at = NULL WHERE serial = '\(serials[0])';", "un-revoked outside Rampart"),
            ("unspent", "UPDATE bootstrap_tokens SET used_at = NULL;", "could be spent again"),
            ("reassigned", "UPDATE issued_certificates SET spiffe_id = 'spiffe://cluster.local/ns/admin/sa/root' WHERE serial = '\(serials[1])';", "was for \(id)"),
            ("removed", "DELETE FROM issued_certificates WHERE serial = '\(serials[1])';", "removed outside Rampart"),
            // A revoked certificate whose expiry is moved into the past would leave the revocation list.
            ("expiry", "UPDATE issued_certificates SET not_after = '2001-01-01 00:00:00.000' WHERE serial = '\(serials[0])';", "recorded"),
            ("key", "UPDATE issued_certificates SET public_key_sha256 = '\(String(repeating: "0", count: 64))' WHERE serial = '\(serials[1])';", "another public key"),
            ("added", "INSERT INTO bootstrap_tokens (token_sha256, spiffe_id, created_at, expires_at) VALUES ('\(String(repeating: "ab", count: 32))', '\(id)', '2026-01-01 00:00:00.000', '2099-01-01 00:00:00.000');", "added outside Rampart"),
        ]
        for item in cases {
            let result = try tampered(item.label, item.sql)
            #expect(result.status == 1 && result.stdout.contains(item.says), "\(item.label): \(result.stdout)")
            #expect(result.stdout.contains("audit chain intact"), "the chain itself is untouched: \(result.stdout)")
        }
    }

    @Test("apply warns of a RequestAuthentication no policy backs (RP077) unless a stored policy requires its tokens")
    func tokenRequirementAgainstStore() throws {
        let ca = try CAProcess(label: "config-rp077")
        let authentication = "\(ca.directory)/ra.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: shop}
            spec:
              jwtRules: [{issuer: "https://idp.example", jwksUri: "https://idp.example/keys"}]
            """.write(toFile: authentication, atomically: true, encoding: .utf8)
        let alone = try rampart("apply", "-f", authentication, "--dry-run", "--state", ca.state)
        #expect(alone.stderr.contains("RP077"), "\(alone.stderr)")
        let policy = "\(ca.directory)/require.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: require-jwt, namespace: shop}
            spec:
              rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        #expect(try rampart("apply", "-f", policy, "--state", ca.state).succeeded)
        let backed = try rampart("apply", "-f", authentication, "--state", ca.state)
        #expect(backed.succeeded && !backed.stderr.contains("RP077"), "\(backed.stderr)")
    }
}
