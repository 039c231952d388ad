import Foundation
import RampartPolicy

/// Access to the fixture corpora.
enum Corpus {
    /// `Tests/Fixtures`, shared by the test targets, found from this file's own path.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures", isDirectory: true)

    static func url(_ name: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CorpusError(reason: "fixture \(name) is missing from \(directory.path)")
        }
        return url
    }

    static func text(_ name: String) throws -> String {
        try String(contentsOf: url(name), encoding: .utf8)
    }

    static func object(_ name: String) throws -> [String: Any] {
        guard let object = try PlainYAML.parse(text(name)) as? [String: Any] else {
            throw CorpusError(reason: "fixture \(name) is not a mapping")
        }
        return object
    }

    /// One case of authz-cases.yaml: its id, the YAML of the policy sets it names, and the case.
    struct AuthzCase {
        let id: String
        let yaml: String
        let item: [String: Any]

        /// The case's request.
        func request() throws -> AuthzRequest { try AuthzRequest(object: item["request"]) }
    }

    /// Every case of authz-cases.yaml, and the JWKS environment of jwks-environment.yaml that the
    /// network-dependent ones assume.
    static func authzCases(_ file: String = "authz-cases.yaml") throws -> (cases: [AuthzCase], environment: JWKSEnvironment) {
        let corpus = try object(file)
        guard let sets = corpus["policy_sets"] as? [String: String], let items = corpus["cases"] as? [[String: Any]] else {
            throw CorpusError(reason: "\(file) has no policy_sets mapping or cases list")
        }
        let cases = items.map { item in
            let names = item["policy_set"] as? [String] ?? []
            return AuthzCase(id: item["id"] as? String ?? "?", yaml: names.compactMap { sets[$0] }.joined(separator: "\n---\n"), item: item)
        }
        return (cases, try JWKSEnvironment.from(try PlainYAML.parse(text("jwks-environment.yaml"))))
    }
}

struct CorpusError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}
