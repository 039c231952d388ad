#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The CPU time the calling thread has used, so a benchmark on a busy machine is not charged for
/// the time other processes held the core.
enum ThreadCPUClock {
    /// Nanoseconds of CPU time used by the calling thread.
    static func nanoseconds() -> UInt64 {
        var spec = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec) == 0 else { return 0 }
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
