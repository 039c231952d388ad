import Foundation
import Testing

@testable import RampartPolicy

/// Findings at the line of the field at fault, naming their resource, each said once, with a fix
/// that names what was probably meant.
@Suite("where findings point and what they suggest")
struct DiagnosticPlacementTests {
    /// `rampart analyze` on one file holding `yaml`.
    static func analyze(_ yaml: String) throws -> [Diagnostic] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("placement-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("p.yaml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        return PolicyEngine.analyze(paths: [file])
    }

    @Test("kind and apiVersion are reported at their own lines; a known kind in another version names its resource")
    func kindAndVersionLines() throws {
        let found = try Self.analyze(
            """
            metadata: {name: p, namespace: foo}
            spec: {}
            kind: AuthorisationPolicy
            apiVersion: security.istio.io/v1
            ---
            metadata: {name: q, namespace: foo}
            apiVersion: security.istio.io/v1alpha1
            kind: AuthorizationPolicy
            """)
        let kind = try #require(found.first { $0.field == "kind" })
        #expect(kind.line == 3 && kind.fix.contains("did you mean kind: AuthorizationPolicy"), "\(kind)")
        let version = try #require(found.first { $0.field == "apiVersion" })
        #expect(version.line == 7 && version.resource?.qualifiedName == "foo/q", "\(version)")
    }

    @Test("a portLevelMtls key's problem is reported at the key, the second of two spellings at its own line")
    func portKeyLines() throws {
        let found = try Self.analyze(
            """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: pa, namespace: foo}
            spec:
              selector: {matchLabels: {app: a}}
              portLevelMtls:
                8080:
                  mode: DISABLE
                "8080":
                  mode: STRICT
                http:
                  mode: STRICT
            """)
        #expect(found.first { $0.code == .duplicatePort }?.line == 9, "\(found)")
        #expect(found.first { $0.code == .badPort }?.line == 11, "\(found)")
    }

    @Test("an unknown top-level field names its resource; a misspelt key gets no second finding about the value it held")
    func resourceAndFollowOns() throws {
        let found = try Self.analyze(
            """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: foo}
            specs: {}
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: c, namespace: foo}
            spec:
              action: CUSTOM
              provider: {nam: ext}
              rules: [{}]
            ---
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: r, namespace: foo}
            spec:
              jwtRules: [{issuer: x, fromHeaders: [{nam: x-token}]}]
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            """)
        let top = try #require(found.first { $0.field == "specs" })
        #expect(top.resource?.qualifiedName == "foo/p", "\(top)")
        #expect(found.filter { $0.resource?.qualifiedName == "foo/c" }.map(\.code) == [.unknownField], "\(found)")
        #expect(
            found.filter { $0.resource?.qualifiedName == "foo/r" && $0.code != .tokenNotRequired }.map(\.code) == [.unknownField],
            "\(found)")
        #expect(found.filter { $0.code == .badMetadata }.count == 1, "\(found)")
    }

    @Test("an unknown field's fix names the field meant: another case, a letter or two off, two letters swapped")
    func didYouMean() {
        #expect(DecodeContext.nearest("jwksURI", among: ["jwksUri", "jwks", "issuer"]) == "jwksUri")
        #expect(DecodeContext.nearest("method", among: ["methods", "notMethods", "paths"]) == "methods")
        #expect(DecodeContext.nearest("form", among: ["from", "to", "when"]) == "from")
        #expect(DecodeContext.nearest("matchLabel", among: ["matchLabels"]) == "matchLabels")
        #expect(DecodeContext.nearest("zzzz", among: ["from", "to", "when"]) == nil)
    }

    @Test("a value no request has says what that does in a not field; a timeout's fix rounds to its neighbours")
    func wording() throws {
        let found = try Self.analyze(
            """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: foo}
            spec:
              rules:
              - to: [{operation: {notMethods: [get], methods: [post]}}]
            ---
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: r, namespace: foo}
            spec:
              jwtRules: [{issuer: x, jwksUri: "https://x/keys", timeout: 1.5ms}]
            """)
        #expect(found.contains { $0.field.hasSuffix("notMethods[0]") && $0.message.contains("excludes nothing") }, "\(found)")
        #expect(found.contains { $0.field.hasSuffix(".methods[0]") && $0.message.contains("never matches") }, "\(found)")
        #expect(found.contains { $0.field.hasSuffix("timeout") && $0.fix.contains("1ms or 2ms") }, "\(found)")
    }
}

/// Findings that say what is wrong in the words that fit, and do not bury one another.
@Suite("finding wording and volume")
struct DiagnosticVolumeTests {
    @Test("hundreds of values worth the same warning give ten warnings and one count of the rest")
    func warningsCapped() throws {
        let paths = (0..<500).map { "\"api-\($0)\"" }.joined(separator: ", ")
        let found = try DiagnosticPlacementTests.analyze(
            """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: many, namespace: foo}
            spec:
              rules:
              - to: [{operation: {paths: [\(paths)]}}]
            """)
        let warnings = found.filter { $0.code == .neverMatches }
        #expect(warnings.count == Reporter.warningsShown + 1, "\(warnings.count)")
        #expect(warnings.prefix(Reporter.warningsShown).map(\.field) == (0..<Reporter.warningsShown).map { "spec.rules[0].to[0].operation.paths[\($0)]" })
        let summary = try #require(warnings.last)
        #expect(summary.message.hasPrefix("490 more warnings like the 10 above"), "\(summary.message)")
        #expect(summary.field == "spec.rules[0].to[0].operation.paths[10]" && summary.line == 6, "\(summary)")
        #expect(summary.severity == .warning)
    }

    @Test("errors are never cut short, however many")
    func errorsAllShown() throws {
        let ports = (0..<40).map { "\"x\($0)\"" }.joined(separator: ", ")
        let found = try DiagnosticPlacementTests.analyze(
            """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: many, namespace: foo}
            spec:
              rules:
              - to: [{operation: {ports: [\(ports)]}}]
            """)
        #expect(found.filter { $0.severity == .error && $0.field.contains("ports[") }.count == 40, "\(found.count)")
    }

    @Test("a signed portLevelMtls key is said to be out of the port range, not to be no number")
    func signedPortKey() throws {
        let found = try DiagnosticPlacementTests.analyze(
            """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: p, namespace: foo}
            spec:
              selector: {matchLabels: {app: a}}
              portLevelMtls:
                "-1": {mode: STRICT}
                "x": {mode: STRICT}
            """)
        let signed = try #require(found.first { $0.field.hasSuffix(".-1") }, "\(found)")
        #expect(signed.message.contains("1 to 65535") && !signed.message.contains("not a number"), "\(signed.message)")
        let word = try #require(found.first { $0.field.hasSuffix(".x") }, "\(found)")
        #expect(word.message.contains("not a number"), "\(word.message)")
    }

    @Test("a DENY policy without rules is reported at its action")
    func denyWithoutRulesAtAction() throws {
        let found = try DiagnosticPlacementTests.analyze(
            """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: foo}
            spec:
              selector: {matchLabels: {app: a}}
              action: DENY
            """)
        let missing = try #require(found.first { $0.code == .missingRules }, "\(found)")
        #expect(missing.line == 6 && missing.field == "spec.action", "\(missing)")
    }
}
