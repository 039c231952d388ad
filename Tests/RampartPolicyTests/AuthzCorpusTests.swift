import Foundation
import RampartPolicy
import Testing

@Suite("authorization corpus")
struct AuthzCorpusTests {
    @Test("every case of authz-cases.yaml, and of the derived cases, gets the decision Istio gives", arguments: [
        ("authz-cases.yaml", 165), ("authz-derived-cases.yaml", 353),
    ])
    func everyCase(file: String, atLeast: Int) throws {
        let (cases, environment) = try Corpus.authzCases(file)
        var failures: [String] = []
        for corpusCase in cases {
            let id = corpusCase.id
            let item = corpusCase.item
            let engine = PolicyEngine(yaml: corpusCase.yaml, file: id, options: SnapshotOptions(jwks: environment))
            let schemaErrors = engine.diagnostics.filter { $0.code.rawValue < "RP010" }
            if !schemaErrors.isEmpty {
                failures.append("\(id): policies unreadable: \(schemaErrors.map(\.description).joined(separator: "; "))")
                continue
            }
            let request = try corpusCase.request()
            let decision = engine.snapshot.evaluate(request)
            let expected = "\(item["expected"] ?? "")"
            let status = item["http_status"] as? Int
            let ok: Bool
            if expected == "401" {
                ok = decision.status == 401
            } else {
                ok = decision.decision.rawValue == expected && (status == nil || status == 200 || decision.status == status)
            }
            if !ok {
                failures.append("\(id): expected \(expected) \(status.map(String.init) ?? ""), got \(decision.decision.rawValue) \(decision.status): \(decision.reason)")
            }
            // The explain path checks each field on its own; it must reach the same decision.
            let explained = engine.snapshot.explain(request).decision
            if explained.decision != decision.decision || explained.status != decision.status {
                failures.append("\(id): explain decides \(explained.decision.rawValue) \(explained.status), evaluate \(decision.decision.rawValue) \(decision.status)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(cases.count) cases disagree:\n\(failures.joined(separator: "\n"))")
        #expect(cases.count >= atLeast)
    }
}
