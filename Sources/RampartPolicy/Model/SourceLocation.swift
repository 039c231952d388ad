/// Where a resource came from, with the line of every field path it holds.
///
/// Validation and analysis look up the line of the field they report, falling back to the closest
/// enclosing field, so every finding points at a real line of the file.
public struct SourceLocation: Sendable, Hashable {
    /// The file path, or `<input>` for in-memory text.
    public let file: String
    /// The line where the document starts.
    public let line: Int
    /// The line of each field path (`spec.rules[0].to`).
    public let fieldLines: [String: Int]

    /// Creates a location.
    public init(file: String, line: Int, fieldLines: [String: Int] = [:]) {
        self.file = file
        self.line = line
        self.fieldLines = fieldLines
    }

    /// The line of `path`, or of its closest recorded parent, or of the document.
    public func line(of path: String) -> Int {
        var current = Substring(path)
        while !current.isEmpty {
            if let found = fieldLines[String(current)] { return found }
            guard let cut = current.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
            current = current[..<cut]
        }
        return line
    }
}
