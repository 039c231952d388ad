/// Walks the union of ascending lists of rule offsets in ascending order, each offset once: the
/// wild rules and the request's principal, namespace, method, port, path, header and address
/// buckets (positions of words in the code that hold rule offsets).
///
/// Only the buckets that hold something are kept, packed at the front of `runs`, and a bucket is
/// dropped once read, so each step compares the few live lists rather than all twelve.
struct CandidateCursor {
    /// Positions of the wild rules' offsets, one word apart.
    private var wild: Range<Int>
    /// Positions of the live buckets' offsets, two words apart (`(id, offset)` pairs): the next one
    /// to read and the end; the first `live` entries are in use. Positions are 32-bit, as rule
    /// offsets are, so the cursor stays small enough to be returned in place.
    private var runs: InlineArray<12, (next: UInt32, end: UInt32)>
    private var live = 0

    /// Starts a walk over buckets given as (position of the first offset, end).
    @inline(__always)
    init(
        wild: Range<Int>, principal: (next: Int, end: Int), namespace: (next: Int, end: Int),
        method: (next: Int, end: Int), port: (next: Int, end: Int), pathPrefix: (next: Int, end: Int) = (0, 0),
        pathSuffix: (next: Int, end: Int) = (0, 0),
        headers: ((next: Int, end: Int), (next: Int, end: Int), (next: Int, end: Int), (next: Int, end: Int)) = (
            (0, 0), (0, 0), (0, 0), (0, 0)
        ), source: (next: Int, end: Int) = (0, 0), remote: (next: Int, end: Int) = (0, 0)
    ) {
        self.wild = wild
        runs = InlineArray(repeating: (0, 0))
        keep(principal)
        keep(namespace)
        keep(method)
        keep(port)
        keep(pathPrefix)
        keep(pathSuffix)
        keep(headers.0)
        keep(headers.1)
        keep(headers.2)
        keep(headers.3)
        keep(source)
        keep(remote)
    }

    @inline(__always)
    private mutating func keep(_ run: (next: Int, end: Int)) {
        guard run.next < run.end else { return }
        runs[live] = (UInt32(truncatingIfNeeded: run.next), UInt32(truncatingIfNeeded: run.end))
        live += 1
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
            best = min(best, code[Int(runs[index].next)])
            index += 1
        }
        if best == UInt32.max { return nil }
        if !wild.isEmpty && code[wild.lowerBound] == best { wild = wild.dropFirst() }
        index = 0
        while index < live {
            if code[Int(runs[index].next)] == best {
                runs[index].next += 2
                if runs[index].next >= runs[index].end {
                    // Read to its end: the last live bucket takes its place.
                    live -= 1
                    runs[index] = runs[live]
                    continue
                }
            }
            index += 1
        }
        return Int32(bitPattern: best)
    }
}
