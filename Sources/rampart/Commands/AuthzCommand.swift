import ArgumentParser
import Foundation
import RampartPolicy

/// `rampart authz`: ask the policy engine about a request.
struct Authz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authz",
        abstract: "Evaluate requests against mesh policies with Istio's semantics.",
        subcommands: [AuthzCheck.self]
    )
}

/// `rampart authz check`: one request, one decision, and optionally why.
struct AuthzCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Decide one request against AuthorizationPolicy, PeerAuthentication and RequestAuthentication resources.",
        discussion: """
            The request file is JSON or YAML: protocol, source {principal, namespace, ip, remote_ip, mtls}, destination \
            {namespace, labels, port, ip}, method, host, path, headers, sni, ext_authz, jwt {present, valid, claims, \
            request_principal}. The exit status is 0 whatever the decision; it is non-zero only when an input is bad.
            """
    )

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Policy YAML files or folders.", valueName: "path"))
    var policies: [String]

    @Option(help: ArgumentHelp("The request, as JSON or YAML.", valueName: "file"))
    var request: String

    @Flag(help: "Add every policy considered and, for each, the rule and field that matched or failed.")
    var explain = false

    @Flag(help: "Print one JSON object: decision, status, policy, rule, mtls_mode, reason (and explain).")
    var json = false

    @Option(help: "The mesh's root namespace, whose policies apply mesh-wide.")
    var rootNamespace: String = "istio-system"

    @Option(help: ArgumentHelp("A YAML file stating JWKS fetch outcomes for offline checks: {unreachable: [uri], latency_ms: {uri: ms}}.", valueName: "file"))
    var jwksEnv: String?

    func validate() throws {
        guard !policies.isEmpty else { throw ValidationError("--policies needs at least one YAML file or folder") }
    }

    func run() throws {
        let loaded = PolicyLoader.load(paths: policies)
        if loaded.hasErrors {
            let errors = loaded.diagnostics.filter { $0.severity == .error }
            FileHandle.standardError.write(Data((PolicyEngine.renderHuman(errors) + "\n").utf8))
            throw ValidationError("the policies could not be read (\(errors.count) error\(errors.count == 1 ? "" : "s") above); fix them, then check again")
        }
        var environment = JWKSEnvironment()
        if let jwksEnv {
            do {
                environment = JWKSEnvironment.from(try PlainYAML.parse(file: jwksEnv))
            } catch {
                throw ValidationError("--jwks-env \(jwksEnv): \(error)")
            }
        }
        let engine = PolicyEngine(loaded: loaded, options: SnapshotOptions(rootNamespace: rootNamespace, jwks: environment))
        let parsed: AuthzRequest
        do {
            parsed = try AuthzRequest(file: request)
        } catch {
            throw ValidationError("request \(request): \(error)")
        }
        let result = engine.check(parsed, explain: explain)
        if json {
            print(try JSONText.render(result))
            return
        }
        print(Self.human(result))
    }

    /// A short human rendering of the decision object.
    static func human(_ result: [String: Any]) -> String {
        func text(_ value: Any?) -> String {
            switch value {
            case nil, is NSNull: return "-"
            case let value?: return "\(value)"
            }
        }
        var lines = [
            "decision:  \(text(result["decision"])) (\(text(result["status"])))",
            "policy:    \(text(result["policy"]))\(result["rule"] is NSNull ? "" : ", rule \(text(result["rule"]))")",
            "mTLS mode: \(text(result["mtls_mode"]))",
            "reason:    \(text(result["reason"]))",
        ]
        if let dryRun = result["dry_run"] as? [[String: Any]] {
            for entry in dryRun {
                lines.append("dry run:   \(text(entry["policy"])) \(text(entry["action"])) would \(text(entry["would_be"]))")
            }
        }
        if let steps = result["explain"] as? [[String: Any]] {
            lines.append("considered:")
            for step in steps {
                let dryRun = (step["dry_run"] as? Bool) == true ? " (dry run)" : ""
                lines.append("  \(text(step["kind"])) \(text(step["policy"]))\(dryRun)")
                for note in step["notes"] as? [String] ?? [] { lines.append("    \(note)") }
            }
        }
        return lines.joined(separator: "\n")
    }
}
