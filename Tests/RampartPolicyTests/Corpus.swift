import Foundation
import RampartPolicy

/// Access to the fixture corpora.
enum Corpus {
    static func url(_ name: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
            throw CorpusError(reason: "fixture \(name) is missing")
        }
        return url
    }

    static func text(_ name: String) throws -> String {
        try String(contentsOf: url(name), encoding: .utf8)
    }

    static func object(_ name: String) throws -> [String: Any] {
        guard let object = try PlainYAML.parse(text(name)) as? [String: Any] else {
            throw CorpusError(reason: "fixture \(name) is not a mapping")
        }
        return object
    }
}

struct CorpusError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}
