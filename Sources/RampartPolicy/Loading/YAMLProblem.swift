import Foundation
import Yams

/// A YAML syntax error said in one line of words, with its place: the line (from 1; 0 when the
/// parser gives none), and the text without the parser's echo of the source line, which can hold
/// control characters and be very long.
struct YAMLProblem {
    let line: Int
    let column: Int?
    let message: String
    /// What to do about it.
    let fix: String

    init(_ error: Error) {
        guard let yamlError = error as? YamlError else {
            line = 0
            column = nil
            message = Self.clip("\(error)")
            fix = "correct the YAML syntax"
            return
        }
        if case .duplicatedKeysInMapping(let duplicates, let context) = yamlError {
            // Said without the parser's echo of the mapping, which can hold a credential.
            let first = context.mark.line
            let key = duplicates.first ?? ""
            line = Self.repeatedKeyLine(key, after: context.mark, in: context.text) ?? first
            column = nil
            let names = duplicates.map { "\"\(Self.clip($0))\"" }.joined(separator: ", ")
            message = "\(names) appears more than once in one mapping (first at line \(first))"
            fix = "keep one \(Self.clip(key)) in that mapping"
            return
        }
        switch yamlError {
        case .reader(let problem, let offset, let value, let yaml):
            line = offset.map { Self.line(ofByte: $0, in: yaml) } ?? 0
            column = nil
            let byte = value >= 0 && value < 0x110000 ? String(format: " (U+%04X)", value) : ""
            message = "\(Self.words(problem))\(byte)\(line > 0 ? " at line \(line)" : "")"
        case .scanner(let context, let problem, let mark, let yaml), .parser(let context, let problem, let mark, let yaml),
            .composer(let context, let problem, let mark, let yaml):
            // libyaml places a fault found at the end of the text (an unclosed bracket or quote)
            // on the line after the last: it is reported on the last line, which an editor shows.
            let lines = Self.lineCount(yaml)
            let atEnd = mark.line > lines
            line = atEnd ? max(lines, 1) : mark.line
            column = atEnd ? nil : mark.column
            let within = context.map { " (\(Self.words($0.text)) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            let place = atEnd ? "at the end of the file" : "at line \(mark.line), column \(mark.column)"
            message = "\(Self.words(problem)) \(place)\(within)\(Self.tabHint(yaml, line: mark.line))"
        default:
            line = 0
            column = nil
            message = Self.clip("\(yamlError)")
        }
        fix = line > 0 ? "correct the YAML syntax at this line" : "correct the YAML syntax"
    }

    /// The number of lines of the text, the last counted when it does not end with a newline.
    private static func lineCount(_ text: String) -> Int {
        var lines = 0
        for byte in text.utf8 where byte == 0x0A { lines += 1 }
        if let last = text.utf8.last, last != 0x0A { lines += 1 }
        return lines
    }

    /// libyaml's wording, with its internals left out.
    private static func words(_ problem: String) -> String {
        if problem.hasPrefix("Maximum nesting level reached") { return "the document nests too deeply" }
        return clip(problem)
    }

    /// A note when line `line` (from 1) is indented with a tab: libyaml only says it found a
    /// character that cannot start a token.
    private static func tabHint(_ yaml: String, line: Int) -> String {
        guard line > 0 else { return "" }
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        guard line <= lines.count, lines[line - 1].prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") else { return "" }
        return "; the line is indented with a tab, and YAML indents with spaces only"
    }

    /// The line of the next `key:` at the same column as the first one, after it.
    private static func repeatedKeyLine(_ key: String, after mark: Mark, in text: String) -> Int? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard mark.line >= 1, mark.line < lines.count else { return nil }
        let indent = String(repeating: " ", count: max(mark.column - 1, 0))
        for index in mark.line..<lines.count {
            let line = lines[index]
            if line.hasPrefix(indent + key + ":") || line.hasPrefix(indent + "\"" + key + "\":") { return index + 1 }
        }
        return nil
    }

    /// The line (from 1) of the byte at `offset` of the text.
    private static func line(ofByte offset: Int, in text: String) -> Int {
        1 + text.utf8.prefix(max(0, offset)).reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    }

    /// At most 300 characters, on one line, with control characters escaped.
    static func clip(_ text: String) -> String {
        var oneLine = DiagnosticText.escaped(text.replacingOccurrences(of: "\n", with: " "))
        if oneLine.count > 300 { oneLine = String(oneLine.prefix(300)) + "…" }
        return oneLine
    }
}

/// Text from an input file made safe to print: control characters (C0, DEL, C1) and the Unicode
/// bidirectional controls, which could rewrite a terminal's screen or reorder what it shows, are
/// written as `\u{…}`.
public enum DiagnosticText {
    /// `text` when it has at most `limit` characters; else its start and its end around a note of
    /// how much was left out, `limit` characters or a few more in all.
    public static func clipped(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit, text.count > limit else { return text }
        let tail = limit / 4
        let head = limit - tail
        let omitted = text.count - head - tail
        return "\(text.prefix(head))…(\(omitted) characters left out)…\(text.suffix(tail))"
    }

    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) {
                out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F..<0xA0: return scalar != "\t"
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }
}
