/// Walks the union of ascending lists of rule offsets in ascending order, each offset once: the
/// wild rules and the request's principal, namespace, method, port and path buckets (positions of
/// words in the code that hold rule offsets).
struct CandidateCursor {
    /// Positions of the wild rules' offsets, one word apart.
    private var wild: Range<Int>
    /// Positions of each bucket's offsets, two words apart (`(id, offset)` pairs): the next one to
    /// read and the end.
    private var principal: (next: Int, end: Int)
    private var namespace: (next: Int, end: Int)
    private var method: (next: Int, end: Int)
    private var port: (next: Int, end: Int)
    private var pathPrefix: (next: Int, end: Int)
    private var pathSuffix: (next: Int, end: Int)

    /// Starts a walk over buckets given as (position of the first offset, end).
    @inline(__always)
    init(
        wild: Range<Int>, principal: (next: Int, end: Int), namespace: (next: Int, end: Int),
        method: (next: Int, end: Int), port: (next: Int, end: Int), pathPrefix: (next: Int, end: Int) = (0, 0),
        pathSuffix: (next: Int, end: Int) = (0, 0)
    ) {
        self.wild = wild
        self.principal = principal
        self.namespace = namespace
        self.method = method
        self.port = port
        self.pathPrefix = pathPrefix
        self.pathSuffix = pathSuffix
    }

    /// The next candidate rule offset in `code`, or `nil` when all are visited.
    mutating func next(_ code: ProgramCode) -> Int32? {
        code.words.withUnsafeBufferPointer { next($0) }
    }

    /// The next candidate rule offset, reading the lists from the code's words.
    @inline(__always)
    mutating func next(_ code: UnsafeBufferPointer<UInt32>) -> Int32? {
        var best = UInt32.max
        if !wild.isEmpty { best = code[wild.lowerBound] }
        if principal.next < principal.end { best = min(best, code[principal.next]) }
        if namespace.next < namespace.end { best = min(best, code[namespace.next]) }
        if method.next < method.end { best = min(best, code[method.next]) }
        if port.next < port.end { best = min(best, code[port.next]) }
        if pathPrefix.next < pathPrefix.end { best = min(best, code[pathPrefix.next]) }
        if pathSuffix.next < pathSuffix.end { best = min(best, code[pathSuffix.next]) }
        if best == UInt32.max { return nil }
        if !wild.isEmpty && code[wild.lowerBound] == best { wild = wild.dropFirst() }
        if principal.next < principal.end && code[principal.next] == best { principal.next += 2 }
        if namespace.next < namespace.end && code[namespace.next] == best { namespace.next += 2 }
        if method.next < method.end && code[method.next] == best { method.next += 2 }
        if port.next < port.end && code[port.next] == best { port.next += 2 }
        if pathPrefix.next < pathPrefix.end && code[pathPrefix.next] == best { pathPrefix.next += 2 }
        if pathSuffix.next < pathSuffix.end && code[pathSuffix.next] == best { pathSuffix.next += 2 }
        return Int32(bitPattern: best)
    }
}
