@preconcurrency import Glibc

/// The C standard output stream's state, which print() writes through.
enum StandardOutputState {
    /// Flushes what print() buffered, and says whether any write to standard output failed.
    static func failed() -> Bool {
        fflush(stdout) != 0 || ferror(stdout) != 0
    }
}
