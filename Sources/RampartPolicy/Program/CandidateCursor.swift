/// Walks the union of four ascending lists of rule offsets in ascending order, each offset once:
/// the wild rules and the request's principal, namespace and method buckets (word offsets into
/// the code).
struct CandidateCursor {
    private var wild: Range<Int>
    private var principal: StrideTo<Int>.Iterator
    private var namespace: StrideTo<Int>.Iterator
    private var nextPrincipal: Int?
    private var nextNamespace: Int?
    private var method: StrideTo<Int>.Iterator
    private var nextMethod: Int?

    init(wild: Range<Int>, principal: StrideTo<Int>, namespace: StrideTo<Int>, method: StrideTo<Int>) {
        self.wild = wild
        self.principal = principal.makeIterator()
        self.namespace = namespace.makeIterator()
        self.method = method.makeIterator()
        nextPrincipal = self.principal.next()
        nextNamespace = self.namespace.next()
        nextMethod = self.method.next()
    }

    /// The next candidate rule offset in `code`, or `nil` when all are visited.
    mutating func next(_ code: ProgramCode) -> Int32? {
        code.words.withUnsafeBufferPointer { next($0) }
    }

    /// The next candidate rule offset, reading the lists from the code's words.
    @inline(__always)
    mutating func next(_ code: UnsafeBufferPointer<UInt32>) -> Int32? {
        if nextPrincipal == nil && nextNamespace == nil && nextMethod == nil {
            guard let index = wild.popFirst() else { return nil }
            return Int32(bitPattern: code[index])
        }
        var best = UInt32.max
        if let index = wild.first { best = code[index] }
        if let index = nextPrincipal { best = min(best, code[index]) }
        if let index = nextNamespace { best = min(best, code[index]) }
        if let index = nextMethod { best = min(best, code[index]) }
        if let index = wild.first, code[index] == best { wild.removeFirst() }
        if let index = nextPrincipal, code[index] == best { nextPrincipal = principal.next() }
        if let index = nextNamespace, code[index] == best { nextNamespace = namespace.next() }
        if let index = nextMethod, code[index] == best { nextMethod = method.next() }
        return Int32(bitPattern: best)
    }
}
