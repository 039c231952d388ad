import Foundation
import RampartPolicy
import Testing

@Suite("validation corpus")
struct ValidationCorpusTests {
    @Test("every security-kind case of validation-cases.yaml is rejected or warned about as listed")
    func everyCase() throws {
        let corpus = try Corpus.object("validation-cases.yaml")
        let cases = try #require(corpus["cases"] as? [[String: Any]])
        var failures: [String] = []
        var checked = 0
        for item in cases {
            let id = item["id"] as? String ?? "?"
            let yaml = item["yaml"] as? String ?? ""
            let kinds = ["AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication"]
            guard kinds.contains(where: { yaml.contains("kind: \($0)") }) else { continue }
            checked += 1
            let loaded = PolicyLoader.load(yaml: yaml, file: id)
            let diagnostics = loaded.diagnostics + PolicyAnalyzer.analyze(loaded.resources)
            let errors = diagnostics.filter { $0.severity == .error }
            let warnings = diagnostics.filter { $0.severity == .warning }
            let expected = item["result"] as? String ?? ""
            let ok = expected == "error" ? !errors.isEmpty : (errors.isEmpty && !warnings.isEmpty)
            if !ok {
                failures.append("\(id): expected \(expected), got \(diagnostics.map(\.description))")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(checked) cases disagree:\n\(failures.joined(separator: "\n"))")
        #expect(checked >= 40)
    }
}
