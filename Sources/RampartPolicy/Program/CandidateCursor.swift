/// Walks the union of ascending lists of rule offsets in ascending order, each offset once: the
/// wild rules and the request's principal, namespace, method, port, path, header and address
/// buckets (positions of words in the code that hold rule offsets).
///
/// Only the buckets that hold something are kept, packed at the front of `nexts` and `ends`, and
/// a bucket is dropped once read, so each step compares the few live lists rather than all twelve.
struct CandidateCursor {
    /// Positions of the wild rules' offsets, one word apart.
    private var wild: Range<Int>
    /// Positions of the live buckets' offsets, two words apart (`(id, offset)` pairs): the next one
    /// to read and the end; the first `live` entries are in use. Positions are 32-bit, as rule
    /// offsets are, so the cursor stays small enough to be returned in place.
    private var nexts: Slots = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    private var ends: Slots = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    private var live = 0

    /// Twelve positions, read and written by index through their bytes.
    private typealias Slots = (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)

    @inline(__always)
    private static func read(_ slots: inout Slots, _ index: Int) -> UInt32 {
        withUnsafeBytes(of: &slots) { $0.load(fromByteOffset: index &* 4, as: UInt32.self) }
    }

    @inline(__always)
    private static func write(_ slots: inout Slots, _ index: Int, _ value: UInt32) {
        withUnsafeMutableBytes(of: &slots) { $0.storeBytes(of: value, toByteOffset: index &* 4, as: UInt32.self) }
    }

    /// Starts a walk over the wild rules; `add` adds the buckets.
    @inline(__always)
    init(wild: Range<Int>) {
        self.wild = wild
    }

    /// Adds the bucket of `id` in a list of `(id, offset)` pairs (see `RuleGroup.run`), if the id
    /// is present (not `-1`) and the list holds something.
    ///
    /// Each bucket is added where it is found, and kept without a branch (the slot at `live` is
    /// always written; `live` grows only for a bucket that holds something): when the twelve
    /// searches were made first and their results kept afterwards, the compiler laid out a copy of
    /// the remaining code for each combination of empty results (24 KiB for the cursor's start).
    @inline(__always)
    mutating func add(_ pairs: PoolRange, _ id: Int32, _ code: UnsafeBufferPointer<UInt32>) {
        guard id >= 0, pairs.count > 0 else { return }
        let run = RuleGroup.search(pairs, UInt32(bitPattern: id), code)
        Self.write(&nexts, live, UInt32(truncatingIfNeeded: run.next))
        Self.write(&ends, live, UInt32(truncatingIfNeeded: run.end))
        live &+= run.next < run.end ? 1 : 0
    }

    /// The next candidate rule offset in `code`, or `nil` when all are visited.
    mutating func next(_ code: ProgramCode) -> Int32? {
        code.words.withUnsafeBufferPointer { next($0) }
    }

    /// The next candidate rule offset, reading the lists from the code's words.
    @inline(__always)
    mutating func next(_ code: UnsafeBufferPointer<UInt32>) -> Int32? {
        var best = wild.isEmpty ? UInt32.max : code[wild.lowerBound]
        var index = 0
        while index < live {
            best = min(best, code[Int(Self.read(&nexts, index))])
            index += 1
        }
        if best == UInt32.max { return nil }
        if !wild.isEmpty && code[wild.lowerBound] == best { wild = wild.dropFirst() }
        index = 0
        while index < live {
            let next = Self.read(&nexts, index)
            if code[Int(next)] == best {
                if next &+ 2 >= Self.read(&ends, index) {
                    // Read to its end: the last live bucket takes its place.
                    live -= 1
                    Self.write(&nexts, index, Self.read(&nexts, live))
                    Self.write(&ends, index, Self.read(&ends, live))
                    continue
                }
                Self.write(&nexts, index, next &+ 2)
            }
            index += 1
        }
        return Int32(bitPattern: best)
    }
}
