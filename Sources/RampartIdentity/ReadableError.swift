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
