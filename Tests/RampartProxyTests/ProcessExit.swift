import Foundation

extension Process {
    /// Runs the process to its end and returns its standard output. The end is awaited, not
    /// waited for: a thread of the concurrency pool blocked on a child (in `waitUntilExit` or a
    /// pipe's read) can starve the proxies under test of the threads they answer it with. The
    /// output goes through a file, so a child that writes much never blocks on a full pipe.
    func outputToExit() async throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-process-\(UUID().uuidString).out").path
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteUnknown)
        }
        defer {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: path)
        }
        standardOutput = handle
        try await withCheckedThrowingContinuation { (finished: CheckedContinuation<Void, any Error>) in
            terminationHandler = { _ in finished.resume() }
            do {
                try run()
            } catch {
                finished.resume(throwing: error)
            }
        }
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}
