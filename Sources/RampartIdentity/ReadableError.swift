import Foundation

/// Errors from Foundation's file and JSON APIs as people read them: what went wrong and where in
/// the document, without the domain, codes and coding paths of their descriptions.
public enum ReadableError {
    public static func describe(_ error: any Error) -> String {
        if let decoding = error as? DecodingError {
            switch decoding {
            case .dataCorrupted(let context):
                if context.codingPath.isEmpty { return "it is not valid JSON" }
                return "the value of \(path(context.codingPath)) is not valid"
            case .keyNotFound(let key, let context):
                return "the field \(path(context.codingPath + [key])) is missing"
            case .typeMismatch(let type, let context):
                return "the field \(path(context.codingPath)) should be \(kind(type))"
            case .valueNotFound(let type, let context):
                return "the field \(path(context.codingPath)) is null where \(kind(type)) is expected"
            @unknown default:
                return "it does not decode"
            }
        }
        let nsError = error as NSError
        if nsError.domain == NSCocoaErrorDomain || nsError.domain == NSPOSIXErrorDomain {
            return nsError.localizedDescription
        }
        return String(describing: error)
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "the document" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func kind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is Int64.Type, is UInt64.Type, is Int32.Type, is Double.Type: return "a number"
        case is [Any].Type: return "a list"
        default: return "an object"
        }
    }
}

/// Reading a file an option or a rule names, with why it cannot be read in words.
public enum FileProblem {
    /// The file's bytes, or why there are none: it does not exist, is a folder, or cannot be read.
    public static func contents(_ path: String) -> Result<Data, Reason> {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { return .failure(Reason("does not exist")) }
        guard !isFolder.boolValue else { return .failure(Reason("is a folder")) }
        guard let data = FileManager.default.contents(atPath: path) else { return .failure(Reason("cannot be read (permission denied)")) }
        return .success(data)
    }

    /// Why a file cannot be read, as words that follow its name.
    public struct Reason: Error, Sendable, CustomStringConvertible {
        public let description: String

        init(_ description: String) {
            self.description = description
        }
    }
}
