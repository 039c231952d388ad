import Testing

@testable import RampartControlPlane

@Suite("metrics help lines")
struct MetricsHelpTests {
    @Test("a HELP line goes before each TYPE line that has none; one already there is kept")
    func annotate() {
        let text = "# TYPE rampart_config_version gauge\nrampart_config_version 3\n# HELP x given\n# TYPE x counter\nx 1\n# TYPE other_total counter\nother_total 2\n"
        let lines = MetricsHelp.annotate(text).split(separator: "\n").map(String.init)
        #expect(lines[0] == "# HELP rampart_config_version \(MetricsHelp.texts["rampart_config_version"]!)")
        #expect(lines[1] == "# TYPE rampart_config_version gauge")
        #expect(lines.filter { $0.hasPrefix("# HELP x ") } == ["# HELP x given"])
        #expect(lines.contains("# HELP other_total Rampart metric other_total."))
        #expect(lines.filter { !$0.hasPrefix("#") } == ["rampart_config_version 3", "x 1", "other_total 2"])
    }
}
