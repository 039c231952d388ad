import Foundation
@testable import RampartPolicy
import Testing

/// What `analyze` reports when some resources are broken: each problem once, at a line of the
/// file, and no finding drawn from a resource Istio would refuse.
@Suite("analyze: broken resources and follow-on findings")
struct AnalyzerConsistencyTests {
    static func findings(_ yaml: String) -> [Diagnostic] {
        let loaded = PolicyLoader.load(yaml: yaml, file: "broken.yaml")
        return PolicyEngine.withoutFollowOns(loaded.diagnostics, PolicyAnalyzer.analyze(loaded.resources, reading: loaded.diagnostics))
    }

    static let requestAuthentication = """
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: shop}
        spec:
          jwtRules:
          - issuer: https://issuer.example
            jwksUri: https://issuer.example/jwks.json
        """

    @Test("a policy Istio refuses does not back a RequestAuthentication: RP077 still warns")
    func refusedPolicyBacksNothing() {
        let backing = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: require-jwt, namespace: shop}
            spec:
              action: %@
              rules:
              - from:
                - source: {requestPrincipals: ["*"]}
            """
        let sound = Self.findings(Self.requestAuthentication + "\n---\n" + backing.replacingOccurrences(of: "%@", with: "ALLOW"))
        #expect(!sound.contains { $0.code == .tokenNotRequired }, "\(sound)")
        let broken = Self.findings(Self.requestAuthentication + "\n---\n" + backing.replacingOccurrences(of: "%@", with: "ALOW"))
        #expect(broken.contains { $0.code == .badEnum }, "\(broken)")
        #expect(broken.contains { $0.code == .tokenNotRequired && $0.resource?.name == "jwt" }, "\(broken)")
    }

    @Test("a PeerAuthentication with an error takes no part in the mTLS analysis of the others")
    func refusedPeerAuthenticationIsLeftOut() {
        let identity = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: not-from-batch, namespace: shop}
            spec:
              action: DENY
              rules:
              - from:
                - source: {principals: ["cluster.local/ns/shop/sa/batch"]}
            """
        let strict = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: default, namespace: istio-system}
            spec:
              mtls: {mode: PERMISSIVE}
            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: default, namespace: shop}
            spec:
              mtls: {mode: STRICT}
            """
        // PERMISSIVE mesh-wide, STRICT in the namespace: no warning that plaintext escapes the identity DENY.
        let sound = Self.findings(identity + "\n---\n" + strict)
        #expect(!sound.contains { $0.code == .identityWithoutStrict }, "\(sound)")
        // The same PeerAuthentication refused (portLevelMtls needs a selector): it makes nothing STRICT.
        let broken = Self.findings(identity + "\n---\n" + strict + "\n  portLevelMtls: {\"8080\": {mode: STRICT}}")
        #expect(broken.contains { $0.severity == .error }, "\(broken)")
        #expect(broken.contains { $0.code == .identityWithoutStrict }, "\(broken)")
    }

    @Test("a list item of the wrong type is one error: no second finding about the empty entry standing for it")
    func mistypedItemsAreOneError() {
        let cases: [(rule: String, field: String)] = [
            ("- {issuer: iss, fromHeaders: [x-jwt]}", "spec.jwtRules[0].fromHeaders[0]"),
            ("- ~", "spec.jwtRules[0]"),
            ("- {issuer: iss, outputClaimToHeaders: [~]}", "spec.jwtRules[0].outputClaimToHeaders[0]"),
            ("- {issuer: iss, outputClaimToHeaders: [x-sub]}", "spec.jwtRules[0].outputClaimToHeaders[0]"),
        ]
        for (rule, field) in cases {
            let yaml = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r, namespace: shop}\nspec:\n  jwtRules:\n  \(rule)\n"
            let errors = Self.findings(yaml).filter { $0.severity == .error }
            #expect(errors.map(\.code) == [.wrongType] && errors.first?.field == field, "\(rule): \(errors)")
        }
    }

    @Test("a block value of the wrong type is reported at its key's line")
    func wrongTypeAtKey() {
        let cases: [(spec: String, field: String, line: Int)] = [
            ("  rules:\n    from: x\n", "spec.rules", 5),
            ("  selector:\n    - a\n", "spec.selector", 5),
            ("  rules:\n  - to:\n      operation: {paths: [/a]}\n", "spec.rules[0].to", 6),
        ]
        for (spec, field, line) in cases {
            let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n\(spec)"
            let found = Self.findings(yaml).filter { $0.code == .wrongType }
            #expect(found.count == 1 && found.first?.field == field && found.first?.line == line, "\(spec): \(found)")
        }
    }

    @Test("an issuer written empty is one error, which asks for the issuer")
    func emptyIssuerOnce() {
        let yaml = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r, namespace: shop}\nspec:\n  jwtRules:\n  - issuer: \"\"\n"
        let errors = Self.findings(yaml).filter { $0.severity == .error }
        #expect(errors.count == 1 && errors.first?.field == "spec.jwtRules[0].issuer", "\(errors)")
        // An empty rule still gets its own error.
        let empty = Self.findings("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r, namespace: shop}\nspec:\n  jwtRules:\n  - {}\n")
        #expect(empty.filter { $0.severity == .error }.map(\.code) == [.badJWTRule], "\(empty)")
    }

    @Test("label and annotation keys, and label values, are checked as the API server checks them")
    func metadataKeys() {
        func errors(_ metadata: String) -> [Diagnostic] {
            let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: shop\n\(metadata)\nspec: {}\n"
            return Self.findings(yaml).filter { $0.severity == .error }
        }
        let refused: [(String, String)] = [
            ("  labels: {\"bad key!\": x}", "metadata.labels.bad key!"),
            ("  labels: {team: \"has space\"}", "metadata.labels.team"),
            ("  labels: {\"Example.com/tier\": web}", "metadata.labels.Example.com/tier"),
            ("  labels: {\"/tier\": web}", "metadata.labels./tier"),
            ("  labels: {tier: \(String(repeating: "a", count: 64))}", "metadata.labels.tier"),
            ("  annotations: {\"a b\": x}", "metadata.annotations.a b"),
            ("  annotations: {\"example.com/\": x}", "metadata.annotations.example.com/"),
        ]
        for (metadata, field) in refused {
            let found = errors(metadata)
            #expect(found.map(\.code) == [.badMetadata] && found.first?.field == field && found.first?.line == 6, "\(metadata): \(found)")
        }
        let accepted = [
            "  labels: {app: cart, example.com/tier: web, empty: \"\"}",
            "  annotations: {\"Example.com/Owner\": \"anything at all: spaces, !\", note: \"\"}",
        ]
        for metadata in accepted {
            #expect(errors(metadata).isEmpty, "\(metadata): \(errors(metadata))")
        }
        let huge = errors("  annotations: {big: \(String(repeating: "x", count: 262_145))}")
        #expect(huge.map(\.code) == [.badMetadata] && huge.first?.message.contains("262144") == true, "\(huge.map(\.message))")
    }

    @Test("a YAML fault at the end of the file is placed on its last line; a missing file has no line")
    func placesAtTheEnd() throws {
        for (text, lines) in [("apiVersion: v1\nkind: [a, b\n", 2), ("a: 1\nb: \"open\n\n", 3), ("a: {b: 1", 1)] {
            let loaded = PolicyLoader.load(yaml: text, file: "end.yaml")
            let line = try #require(loaded.diagnostics.first { $0.code == .unreadable }).line
            #expect((1...lines).contains(line), "\(text.debugDescription): line \(line) of \(lines)")
        }
        let missing = PolicyLoader.load(paths: ["/nonexistent/policy.yaml"]).diagnostics
        #expect(missing.first?.description.hasPrefix("/nonexistent/policy.yaml: error RP001") == true, "\(missing)")
    }

    @Test("a file past the input bound, or a device that never ends, is refused without being held; a pipe inside a folder is not waited on")
    func boundedInput() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-bounded-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A sparse file one byte past the bound.
        let big = "\(folder)/big.yaml"
        FileManager.default.createFile(atPath: big, contents: nil)
        let handle = try #require(FileHandle(forWritingAtPath: big))
        try handle.truncate(atOffset: UInt64(PolicyLoader.maxInputBytes + 1))
        try handle.close()
        for path in [big, "/dev/zero"] {
            let found = PolicyLoader.load(paths: [path]).diagnostics
            #expect(found.count == 1 && found.first?.code == .unreadable, "\(path): \(found)")
            #expect(found.first?.message.contains("more than 64 MiB") == true, "\(path): \(found)")
        }
        try FileManager.default.removeItem(atPath: big)
        // A device or pipe that ends is read to its end: /dev/null holds no documents.
        #expect(PolicyLoader.load(paths: ["/dev/null"]).diagnostics.isEmpty)
        // A named pipe inside a folder is reported and skipped; the files beside it are read.
        try "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {}\n"
            .write(toFile: "\(folder)/a.yaml", atomically: true, encoding: .utf8)
        #expect(mkfifo("\(folder)/pipe.yaml", 0o600) == 0)
        let loaded = PolicyLoader.load(paths: [folder])
        #expect(loaded.resources.count == 1)
        #expect(loaded.diagnostics.contains { $0.file.hasSuffix("pipe.yaml") && $0.message.contains("not a regular file") }, "\(loaded.diagnostics)")
    }
}
