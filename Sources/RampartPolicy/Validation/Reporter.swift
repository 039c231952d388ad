/// Collects diagnostics about one resource, looking up the line of each field path.
struct Reporter {
    let resource: ResourceID
    let location: SourceLocation
    private(set) var diagnostics: [Diagnostic] = []

    init(resource: ResourceID, location: SourceLocation) {
        self.resource = resource
        self.location = location
    }

    mutating func add(_ code: DiagnosticCode, _ field: String, _ message: String, fix: String) {
        diagnostics.append(
            Diagnostic(
                code: code, file: location.file, line: location.line(of: field), resource: resource, field: field,
                message: message, fix: fix))
    }
}
