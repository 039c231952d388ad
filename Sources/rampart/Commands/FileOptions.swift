import ArgumentParser
import Foundation
import RampartIdentity

/// Files named by options, checked before a command does anything that cannot be undone (spending
/// a token, issuing a certificate): each problem is named with the option and what to do.
enum FileOptions {
    /// Reads a text file an option names, saying why it cannot be: missing, a folder, unreadable,
    /// or binary (DER, for example).
    static func readText(_ path: String, option: String, expected: String, pem: Bool = true) throws -> String {
        let data: Data
        switch FileProblem.contents(path) {
        case .success(let bytes): data = bytes
        case .failure(let reason): throw ValidationError("\(option) \(path) \(reason): give \(expected)")
        }
        guard let text = String(data: data, encoding: .utf8), !data.contains(0) else {
            guard pem else { throw ValidationError("\(option) \(path) is not text: give \(expected)") }
            let der = data.first == 0x30 ? "; it looks like DER: convert it with 'openssl req -inform DER -in \(path) -out \(path).pem' (or 'openssl x509 -inform DER' for a certificate)" : ""
            throw ValidationError("\(option) \(path) is not text\(der): give \(expected) in PEM")
        }
        return text
    }

    /// Checks that `path` can be written before anything is done: not a folder, not one of the
    /// command's own input files (`inputs`: option and path), in a folder that exists and this user
    /// can write in.
    static func checkWritable(_ path: String, option: String, inputs: [(option: String, path: String?)]) throws {
        let target = resolved(path)
        for input in inputs {
            guard let other = input.path else { continue }
            if resolved(other) == target {
                throw ValidationError("\(option) \(path) is the \(input.option) file: writing there would replace it. Give another file")
            }
        }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard !isFolder.boolValue else { throw ValidationError("\(option) \(path) is a folder: give a file path inside it") }
            guard FileManager.default.isWritableFile(atPath: path) else {
                throw ValidationError("\(option) \(path) cannot be written (permission denied): give a file this user can write")
            }
            return
        }
        let parent = (target as NSString).deletingLastPathComponent
        var parentIsFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent.isEmpty ? "." : parent, isDirectory: &parentIsFolder), parentIsFolder.boolValue else {
            throw ValidationError("\(option) \(path): the folder \(parent) does not exist: create it first, or give a path in an existing folder")
        }
        guard FileManager.default.isWritableFile(atPath: parent.isEmpty ? "." : parent) else {
            throw ValidationError("\(option) \(path): this user cannot write in \(parent): give a path in a folder it can write in")
        }
    }

    /// Checks that `path` is, or can become, a folder this user writes in.
    static func checkWritableFolder(_ path: String, option: String) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw ValidationError("\(option) \(path) exists and is not a folder: give a folder path") }
            guard FileManager.default.isWritableFile(atPath: path) else {
                throw ValidationError("\(option) \(path): this user cannot write in the folder: give one it can write in")
            }
            return
        }
        // The nearest existing ancestor decides whether the folder can be made.
        var ancestor = (resolved(path) as NSString).deletingLastPathComponent
        while !ancestor.isEmpty, ancestor != "/", !FileManager.default.fileExists(atPath: ancestor) {
            ancestor = (ancestor as NSString).deletingLastPathComponent
        }
        let existing = ancestor.isEmpty ? "." : ancestor
        var ancestorIsFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: existing, isDirectory: &ancestorIsFolder), ancestorIsFolder.boolValue,
            FileManager.default.isWritableFile(atPath: existing)
        else {
            throw ValidationError("\(option) \(path): the folder cannot be made in \(existing): give a path this user can create")
        }
    }

    /// Writes `text` to the file `path` names. A regular file (or a new one) is replaced whole, through
    /// a temporary file and a rename, so a reader never sees half of it; a symbolic link is
    /// followed, and the file it names replaced. Anything else that exists there (a device such as
    /// `/dev/null` or `/dev/stdout`, a named pipe) is written into, never replaced.
    static func write(_ text: String, to path: String) throws {
        let target = resolved(path)
        let type = (try? FileManager.default.attributesOfItem(atPath: target))?[.type] as? FileAttributeType
        if let type, type != .typeRegular {
            guard let handle = FileHandle(forWritingAtPath: target) else {
                throw ValidationError("\(path) cannot be opened for writing")
            }
            defer { try? handle.close() }
            try handle.write(contentsOf: Data(text.utf8))
            return
        }
        try text.write(toFile: target, atomically: true, encoding: .utf8)
    }

    /// The absolute path with symbolic links resolved, for comparing two names of one file.
    private static func resolved(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (absolute as NSString).resolvingSymlinksInPath
    }
}
