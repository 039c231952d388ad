/// Collects diagnostics about one resource, looking up the line of each field path.
///
/// Warnings of one code are shown for the first `warningsShown` fields; the rest are counted in
/// one more warning of that code, so that a list of thousands of values each worth the same
/// warning does not bury the other findings. Errors are all shown.
struct Reporter {
    let resource: ResourceID
    let location: SourceLocation
    private var shown: [Diagnostic] = []
    /// For each warning code past its limit: how many were left out, and the first one left out.
    private var withheld: [DiagnosticCode: (count: Int, first: Diagnostic)] = [:]
    private var warningCounts: [DiagnosticCode: Int] = [:]

    /// How many warnings of one code a resource shows.
    static let warningsShown = 10

    init(resource: ResourceID, location: SourceLocation) {
        self.resource = resource
        self.location = location
    }

    /// What was found, in the order it was found, then one summary per warning code cut short.
    var diagnostics: [Diagnostic] {
        shown
            + withheld.sorted { $0.key.rawValue < $1.key.rawValue }.map { code, withheld in
                Diagnostic(
                    code: code, file: withheld.first.file, line: withheld.first.line, resource: resource, field: withheld.first.field,
                    message: "\(withheld.count) more warning\(withheld.count == 1 ? "" : "s") like the \(Self.warningsShown) above for this resource, starting here",
                    fix: withheld.first.fix)
            }
    }

    mutating func add(_ code: DiagnosticCode, _ field: String, _ message: String, fix: String) {
        let diagnostic = Diagnostic(
            code: code, file: location.file, line: location.line(of: field), resource: resource, field: field,
            message: message, fix: fix)
        guard code.defaultSeverity == .warning else {
            shown.append(diagnostic)
            return
        }
        let count = warningCounts[code, default: 0] + 1
        warningCounts[code] = count
        if count <= Self.warningsShown {
            shown.append(diagnostic)
        } else if let earlier = withheld[code] {
            withheld[code] = (earlier.count + 1, earlier.first)
        } else {
            withheld[code] = (1, diagnostic)
        }
    }
}
