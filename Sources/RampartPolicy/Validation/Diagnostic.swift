import Foundation

/// One finding about a resource: an error that rejects it or a warning about what it will really do.
///
/// Diagnostics are values so the CLI, the control plane and tests can sort, filter and render them.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    /// Whether the finding rejects the resource or only warns about it.
    public enum Severity: String, Sendable, Hashable, Comparable {
        case error
        case warning

        public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs == .error && rhs == .warning }
    }

    /// The stable code of the finding (`RP0xx`).
    public let code: DiagnosticCode
    /// Whether this is an error or a warning.
    public let severity: Severity
    /// The file the resource came from, or `<input>` for in-memory text.
    public let file: String
    /// The 1-based line of the offending node, or of the closest enclosing node.
    public let line: Int
    /// The resource the finding is about, when one could be identified.
    public let resource: ResourceID?
    /// The field path inside the resource, such as `spec.rules[0].to[0].operation.methods`.
    public let field: String
    /// What was wrong and what was expected.
    public let message: String
    /// How to fix it.
    public let fix: String

    /// Creates a diagnostic.
    public init(
        code: DiagnosticCode, severity: Severity? = nil, file: String, line: Int, resource: ResourceID?,
        field: String, message: String, fix: String
    ) {
        self.code = code
        self.severity = severity ?? code.defaultSeverity
        self.file = file
        self.line = line
        self.resource = resource
        // A value from the input can be a megabyte long: what is said of it stays readable.
        self.field = DiagnosticText.clipped(field, to: 300)
        self.message = DiagnosticText.clipped(message, to: 800)
        self.fix = DiagnosticText.clipped(fix, to: 800)
    }

    /// The human rendering: `file:line: severity CODE: resource field: message (fix: ...)`, with
    /// control and bidirectional characters that came from the input escaped (`DiagnosticText`),
    /// so that a finding cannot rewrite the terminal it is printed on.
    public var description: String {
        let subject = resource.map { "\($0) " } ?? ""
        let where_ = field.isEmpty ? "" : "\(field): "
        // Line 0 is no line: a file or folder that cannot be read at all.
        let place = line > 0 ? "\(file):\(line)" : file
        return DiagnosticText.escaped(
            "\(place): \(severity.rawValue) \(code.rawValue): \(subject)\(where_)\(message) (fix: \(fix))")
    }

    /// A JSON-compatible dictionary of this diagnostic.
    public var jsonObject: [String: Any] {
        // Every key is present in every diagnostic: `resource` is null for one about the file
        // itself (it cannot be read, a document is not a resource).
        [
            "code": code.rawValue, "severity": severity.rawValue, "file": file, "line": line,
            "field": field, "message": message, "fix": fix,
            "resource": resource.map { ["kind": $0.kind.rawValue, "namespace": $0.namespace, "name": $0.name] as Any }
                ?? NSNull(),
        ]
    }
}
