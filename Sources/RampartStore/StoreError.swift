import GRDB
import RampartIdentity

/// Why a store operation failed.
public struct StoreError: CodedError {
    /// The kinds of store failure.
    public enum Code: String, Sendable, Hashable {
        case notFound
        case alreadyExists
        case conflict
        case corrupt
        case unavailable
    }

    /// The kind of failure.
    public let code: Code
    /// What was wrong, and what to do about it.
    public let reason: String

    /// Creates an error with a code and a reason.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}

extension StoreError {
    /// The error to report for SQLite finding the store damaged part-way through an operation
    /// (a page that does not read back, a file that is not a database); `nil` for any other error.
    public static func damage(_ error: any Error, path: String? = nil) -> StoreError? {
        let file = path ?? "rampart.sqlite in the state directory"
        // A row whose value is not of its column's type, or a table or column that is gone: the
        // file was changed outside Rampart.
        let text = String(describing: error)
        if text.contains("could not decode") {
            let column = text.range(of: "column: \"").map { text[$0.upperBound...].prefix { $0 != "\"" } }.map { " (column \($0))" } ?? ""
            return StoreError(
                .corrupt,
                "the store (\(file)) holds a value of the wrong type\(column): it was changed outside Rampart. Stop writing to it, and restore the file from a backup")
        }
        if let database = error as? DatabaseError, database.resultCode == .SQLITE_ERROR,
            let message = database.message, message.hasPrefix("no such table") || message.hasPrefix("no such column")
        {
            return StoreError(
                .corrupt,
                "the store (\(file)) lacks part of its schema (\(message)): it was changed outside Rampart. Stop writing to it, and restore the file from a backup")
        }
        guard let error = error as? DatabaseError, error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB
        else { return nil }
        return StoreError(
            .corrupt,
            "the store (\(file)) is damaged: SQLite reports \"\(error.message ?? "\(error.resultCode)")\" while reading it. Stop writing to it, see the damage with sqlite3 FILE 'PRAGMA integrity_check', and restore the file from a backup")
    }
}
