import Foundation
import Testing

@testable import RampartPolicy

/// `Docs/POLICY.md` lists every diagnostic code with the severity analyze gives it, so a user who
/// meets a code can look it up.
@Suite("diagnostic codes in the docs")
struct DiagnosticCodeDocsTests {
    static let policyDoc = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Docs/POLICY.md")

    @Test("every code has one row in the table of codes, with its default severity")
    func everyCodeDocumented() throws {
        let text = try String(contentsOf: Self.policyDoc, encoding: .utf8)
        let rows = text.split(separator: "\n").filter { $0.hasPrefix("| RP") }
        var documented: [String: String] = [:]
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else { continue }
            #expect(documented[cells[0]] == nil, "\(cells[0]) has two rows")
            documented[cells[0]] = cells[1]
        }
        for code in DiagnosticCode.allCases {
            let severity = code.defaultSeverity == .warning ? "warning" : "error"
            #expect(documented[code.rawValue] == severity, "\(code.rawValue) (\(code)): the docs say \(documented[code.rawValue] ?? "nothing")")
        }
        #expect(Set(documented.keys) == Set(DiagnosticCode.allCases.map(\.rawValue)))
    }
}
