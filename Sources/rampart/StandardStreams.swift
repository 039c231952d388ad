@preconcurrency import Glibc

/// The C standard output stream's state, which print() writes through.
enum StandardOutputState {
    /// Flushes what print() buffered; the error number when that or an earlier write to standard
    /// output failed, else nil.
    static func failure() -> Int32? {
        if fflush(stdout) != 0 { return errno }
        return ferror(stdout) != 0 ? EIO : nil
    }
}
