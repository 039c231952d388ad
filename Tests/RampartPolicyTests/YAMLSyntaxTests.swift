@testable import RampartPolicy
import Testing

@Suite("YAML syntax errors")
struct YAMLSyntaxTests {
    @Test("a line indented with a tab is named as such; other syntax errors are not blamed on tabs")
    func tabIndentation() throws {
        let tabbed = PolicyLoader.load(yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n\tname: x\n", file: "t.yaml")
        let error = try #require(tabbed.diagnostics.first { $0.severity == .error })
        #expect(error.line == 4 && error.message.contains("indented with a tab"), "\(error.message)")
        let unclosed = PolicyLoader.load(yaml: "apiVersion: security.istio.io/v1\nkind: [AuthorizationPolicy\n", file: "u.yaml")
        let other = try #require(unclosed.diagnostics.first { $0.severity == .error })
        #expect(!other.message.contains("tab"), "\(other.message)")
    }
}
