import Foundation
import RampartPolicy

/// One document of a multi-document YAML file: its text as written and the lines it spans.
struct YAMLDocumentSpan: Equatable {
    /// The document's text, without its `---` marker line and surrounding blank lines, ending in a newline.
    let text: String
    /// The first line (1-based) the document may occupy.
    let firstLine: Int
    /// The last line it may occupy.
    let lastLine: Int

    /// Whether `line` falls inside the document.
    func contains(line: Int) -> Bool { (firstLine...lastLine).contains(line) }
}

/// Cuts a YAML stream into its documents at `---` and `...` markers, keeping each document's text
/// (comments included) exactly as written, so that what `rampart apply` stores is what the user wrote.
///
/// A marker is only a marker at the start of a line and followed by a space, a tab or the end of
/// the line, as the YAML spec says; the caller re-loads every cut document on its own to be sure
/// the cut agrees with the YAML parser.
enum YAMLDocuments {
    static func split(_ text: String) -> [YAMLDocumentSpan] {
        var documents: [YAMLDocumentSpan] = []
        var current: [Substring] = []
        var firstLine = 1
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)

        func close(lastLine: Int) {
            defer { current = [] }
            guard lastLine >= firstLine else { return }
            let body = trimmed(current)
            guard !body.isEmpty else { return }
            // The span ends at its last line with content: the blank lines after it (the file's
            // final newline among them) are not part of it.
            let blank = current.reversed().prefix { $0.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" } }.count
            documents.append(YAMLDocumentSpan(text: body, firstLine: firstLine, lastLine: lastLine - blank))
        }

        for (index, line) in lines.enumerated() {
            let number = index + 1
            if let rest = marker("---", line) {
                close(lastLine: number - 1)
                // `--- {…}` or `--- |` starts the document's content on the marker line itself.
                let content = rest.drop { $0 == " " || $0 == "\t" }
                if content.isEmpty || content.hasPrefix("#") {
                    firstLine = number + 1
                } else {
                    firstLine = number
                    current.append(line)
                }
            } else if marker("...", line) != nil {
                close(lastLine: number - 1)
                firstLine = number + 1
            } else {
                current.append(line)
            }
        }
        close(lastLine: lines.count)
        return documents
    }

    /// The rest of the line after `token`, when the line is that document marker.
    private static func marker(_ token: String, _ line: Substring) -> Substring? {
        let line = line.hasSuffix("\r") ? line.dropLast() : line
        guard line.hasPrefix(token) else { return nil }
        let rest = line.dropFirst(token.count)
        guard rest.isEmpty || rest.first == " " || rest.first == "\t" else { return nil }
        return rest
    }

    /// The lines joined, without leading and trailing blank lines, ending in one newline; empty
    /// when the document holds nothing but blank lines and comments.
    private static func trimmed(_ lines: [Substring]) -> String {
        let isBlank: (Substring) -> Bool = { $0.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" } }
        let isComment: (Substring) -> Bool = { $0.drop { $0 == " " || $0 == "\t" }.hasPrefix("#") }
        guard lines.contains(where: { !isBlank($0) && !isComment($0) }) else { return "" }
        var body = lines[...]
        while let first = body.first, isBlank(first) { body = body.dropFirst() }
        while let last = body.last, isBlank(last) { body = body.dropLast() }
        return body.joined(separator: "\n") + "\n"
    }
}

extension YAMLDocuments {
    /// Whether two documents say the same thing: equal once parsed, whatever their comments, key
    /// order, quoting style or flow versus block layout. A value's type counts (`1` is not `"1"`).
    ///
    /// Both documents are of the same resource (kind, namespace and name), so what only says so
    /// differently does not count either: the fields a Kubernetes API server sets
    /// (`metadata.generation`, `uid`, `resourceVersion`, `managedFields`, `selfLink`, the deletion
    /// fields, `status`, and `creationTimestamp`, which the store sets from when the resource was
    /// first applied whatever a document says) and kubectl's `last-applied-configuration`
    /// annotation, which `get -o json` and exports from a cluster carry; the namespace written or
    /// left to its default; and `v1beta1` for `v1`, one resource under two versions of its API.
    static func sameContent(_ stored: String, _ applied: String) -> Bool {
        guard let a = try? PlainYAML.parse(stored), let b = try? PlainYAML.parse(applied) else { return false }
        return equal(withoutServerFields(a), withoutServerFields(b))
    }

    /// Whether two documents of one resource have the same `spec` (both without one counts as the
    /// same): what differs between them is metadata, which leaves a resource's generation as it is.
    static func sameSpec(_ stored: String, _ applied: String) -> Bool {
        guard let a = try? PlainYAML.parse(stored) as? [String: Any], let b = try? PlainYAML.parse(applied) as? [String: Any]
        else { return false }
        return equal(a["spec"], b["spec"])
    }

    /// The metadata fields a Kubernetes API server owns.
    static let serverMetadata = [
        "generation", "uid", "resourceVersion", "managedFields", "selfLink", "deletionTimestamp",
        "deletionGracePeriodSeconds", "creationTimestamp",
    ]

    /// A parsed document without what `sameContent` leaves out of the comparison.
    private static func withoutServerFields(_ document: Any) -> Any {
        guard var object = document as? [String: Any] else { return document }
        object["status"] = nil
        if let version = object["apiVersion"] as? String, version == "security.istio.io/v1beta1" {
            object["apiVersion"] = "security.istio.io/v1"
        }
        if var metadata = object["metadata"] as? [String: Any] {
            for field in serverMetadata + ["name", "namespace"] {
                metadata[field] = nil
            }
            if var annotations = metadata["annotations"] as? [String: Any] {
                annotations["kubectl.kubernetes.io/last-applied-configuration"] = nil
                metadata["annotations"] = annotations.isEmpty ? nil : annotations
            }
            object["metadata"] = metadata.isEmpty ? nil : metadata
        }
        return object
    }

    private static func equal(_ a: Any?, _ b: Any?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (let x as [String: Any], let y as [String: Any]):
            return x.count == y.count && x.allSatisfy { key, value in y.keys.contains(key) && equal(value, y[key]) }
        case (let x as [Any], let y as [Any]):
            return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (let x as String, let y as String): return x == y
        case (let x as Bool, let y as Bool): return x == y
        case (let x as Int, let y as Int): return x == y
        case (let x as Double, let y as Double): return x == y
        case (is NSNull, is NSNull): return true
        default: return false
        }
    }
}
