/// A request's headers as one list of `(tag, name, value)` entries, built with the request, which
/// the fast path scans for the headers its rules read.
///
/// The tag is a cheap hash of the lower-case name (`DestinationHasher`), which a program computes
/// once for each header it reads (`HeaderName`); a lookup compares tags down a contiguous list and
/// the name only on a tag match. A request carries a few to a few dozen headers, so the scan reads
/// one or two cache lines and costs a few instructions per entry, where a lookup in the request's
/// dictionary hashes the name with SipHash and reads the dictionary's metadata, keys and values
/// apart. The table is derived from `AuthzRequest.headers` alone, so it takes no part in the
/// request's equality or hash.
struct HeaderTable: Sendable, Hashable {
    struct Entry: Sendable {
        let tag: UInt64
        let name: String
        let value: String
    }

    let entries: [Entry]

    /// The entries of `headers`, whose names are already lower-case.
    init(_ headers: [String: String]) {
        var entries: [Entry] = []
        entries.reserveCapacity(headers.count)
        for (name, value) in headers { entries.append(Entry(tag: Self.tag(name), name: name, value: value)) }
        self.entries = entries
    }

    /// The tag of a lower-case header name.
    static func tag(_ name: String) -> UInt64 {
        var hasher = DestinationHasher()
        hasher.combine(name)
        return hasher.value
    }

    /// The position of the header `name` in `entries`, or `-1` when the request does not carry it.
    @inline(__always)
    func index(of name: HeaderName) -> Int {
        entries.withUnsafeBufferPointer { entries in
            for index in entries.indices where entries[index].tag == name.tag && entries[index].name == name.name {
                return index
            }
            return -1
        }
    }

    /// The value of the header `name`, or `nil` when the request does not carry it.
    func value(of name: HeaderName) -> String? {
        let index = index(of: name)
        return index < 0 ? nil : entries[index].value
    }

    /// Always equal: the table is a function of the headers, which the request compares itself.
    static func == (_: HeaderTable, _: HeaderTable) -> Bool { true }

    /// Adds nothing: see `==`.
    func hash(into _: inout Hasher) {}
}

/// A lower-case header name a program reads, with its `HeaderTable` tag computed once.
struct HeaderName: Sendable, Hashable {
    let name: String
    let tag: UInt64
    /// Whether the name is a pseudo-header (`:authority`), read from the request's own fields when
    /// the request does not carry it as a header (see `AuthzRequest.pseudoHeader(_:)`).
    let isPseudo: Bool

    init(_ name: String) {
        self.name = name
        tag = HeaderTable.tag(name)
        isPseudo = Self.readsRequestField(name)
    }

    /// Whether a header the request does not carry is read from its own fields: the
    /// pseudo-headers, and `host`, which Envoy's header map holds as `:authority`.
    static func readsRequestField(_ name: String) -> Bool {
        name.utf8.first == UInt8(ascii: ":") || name == "host"
    }
}
