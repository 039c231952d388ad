/// An IPv4 or IPv6 address as 128 bits (IPv4 is kept apart from IPv4-mapped IPv6).
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The high 64 bits (zero for IPv4).
    public let high: UInt64
    /// The low 64 bits (the IPv4 address in the low 32 bits).
    public let low: UInt64
    /// Whether this is an IPv4 address.
    public let isV4: Bool
    /// The text it was parsed from.
    public let description: String

    /// Parses a dotted IPv4 or a colon-separated IPv6 address.
    public init?(_ text: String) {
        switch Self.parseDottedDigits(text) {
        case .address(let value):
            self.high = 0
            self.low = UInt64(value)
            self.isV4 = true
            self.description = text
            return
        case .invalid:
            return nil
        case .notDigits:
            break
        }
        if text.contains(":") {
            guard let (high, low) = Self.parseV6(text) else { return nil }
            self.high = high
            self.low = low
            self.isV4 = false
        } else {
            guard let value = Self.parseV4(text) else { return nil }
            self.high = 0
            self.low = UInt64(value)
            self.isV4 = true
        }
        self.description = text
    }

    /// The outcome of the allocation-free parse of text made only of ASCII digits and dots.
    enum DottedDigits {
        case address(UInt32)
        case invalid
        /// The text holds other characters; the general parser decides.
        case notDigits
    }

    /// Parses digits-and-dots text by the same rules as `parseV4` (four parts, each one to three
    /// digits below 256, no leading zero) without splitting or allocating.
    static func parseDottedDigits(_ text: String) -> DottedDigits {
        text.utf8.withContiguousStorageIfAvailable(parseDottedDigits)
            ?? Array(text.utf8).withUnsafeBufferPointer(parseDottedDigits)
    }

    private static func parseDottedDigits(_ bytes: UnsafeBufferPointer<UInt8>) -> DottedDigits {
        var value: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var leadingZero = false
        var parts = 0
        var valid = true
        for byte in bytes {
            let digit = byte &- UInt8(ascii: "0")
            if digit < 10 {
                if digits == 0 { leadingZero = digit == 0 }
                digits &+= 1
                // Wraps harmlessly past three digits: the part is then invalid anyway.
                part = part &* 10 &+ UInt32(digit)
            } else if byte == UInt8(ascii: ".") {
                valid = valid && validPart(part, digits: digits, leadingZero: leadingZero)
                value = value << 8 | (part & 0xFF)
                parts &+= 1
                part = 0
                digits = 0
            } else {
                return .notDigits
            }
        }
        valid = valid && validPart(part, digits: digits, leadingZero: leadingZero)
        parts &+= 1
        guard valid, parts == 4 else { return .invalid }
        return .address(value << 8 | part)
    }

    /// One to three digits below 256, without a leading zero.
    @inline(__always)
    private static func validPart(_ part: UInt32, digits: Int, leadingZero: Bool) -> Bool {
        digits >= 1 && digits <= 3 && part <= 255 && !(leadingZero && digits > 1)
    }

    static func parseV4(_ text: some StringProtocol) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            // Decimal digits only: Swift's integer parser would also take a sign (`+1`), Go's netip none.
            guard !part.isEmpty, part.count <= 3, part.utf8.allSatisfy(\.isASCIIDigit), let octet = UInt32(part), octet < 256,
                part == "0" || !part.hasPrefix("0")
            else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseV6(_ text: String) -> (UInt64, UInt64)? {
        var groups: [UInt16] = []
        var gapAt: Int?
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        // An embedded IPv4 address may only end the whole address (`::ffff:1.2.3.4`), as in Go's netip.
        func parse(_ part: String, last: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if last, index == pieces.count - 1, piece.contains(".") {
                    guard let v4 = parseV4(piece) else { return nil }
                    result += [UInt16(v4 >> 16), UInt16(v4 & 0xFFFF)]
                } else {
                    guard (1...4).contains(piece.count), piece.utf8.allSatisfy(\.isASCIIHexDigit), let group = UInt16(piece, radix: 16) else {
                        return nil
                    }
                    result.append(group)
                }
            }
            return result
        }
        guard let head = parse(halves[0], last: halves.count == 1) else { return nil }
        groups = head
        if halves.count == 2 {
            guard let tail = parse(halves[1], last: true), head.count + tail.count < 8 else { return nil }
            gapAt = head.count
            groups += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard groups.count == 8, gapAt != nil || halves.count == 1 else { return nil }
        let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        return (high, low)
    }
}

/// An IP block from a policy: one address or a CIDR range.
public struct IPBlock: Sendable, Hashable {
    /// The network address.
    public let address: IPAddress
    /// The prefix length (32 or 128 for a single address).
    public let prefixLength: Int

    /// Parses `10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`. A single IPv6 address may carry a zone
    /// (`fe80::1%eth0`), which Go's netip reads and Istio's policy generator then drops: the block
    /// is the address alone. A block (`fe80::/10%eth0`) takes no zone, nor does IPv4.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) ?? (parts.count == 1 ? Self.zoned(text) : nil) else {
            return nil
        }
        let maximum = address.isV4 ? 32 : 128
        if parts.count == 2 {
            // Digits only, and no leading zero (`/08`), as Go's netip.ParsePrefix reads the length.
            guard let length = Int(parts[1]), (0...maximum).contains(length), parts[1].allSatisfy(\.isNumber),
                parts[1] == "0" || parts[1].first != "0"
            else {
                return nil
            }
            prefixLength = length
        } else {
            prefixLength = maximum
        }
        self.address = address
    }

    /// The IPv6 address of `text` written with a zone after `%`, which must not be empty.
    private static func zoned(_ text: String) -> IPAddress? {
        guard let percent = text.firstIndex(of: "%"), text.index(after: percent) < text.endIndex else { return nil }
        let address = text[..<percent]
        guard address.contains(":") else { return nil }
        return IPAddress(String(address))
    }

    /// Whether `ip` lies in the block.
    @inline(__always)
    public func contains(_ ip: IPAddress) -> Bool {
        Self.contains(ip, isV4: address.isV4, high: address.high, low: address.low, prefixLength: prefixLength)
    }

    /// Whether `ip` lies in the block with this network address and prefix length.
    @inline(__always)
    static func contains(_ ip: IPAddress, isV4: Bool, high: UInt64, low: UInt64, prefixLength: Int) -> Bool {
        guard ip.isV4 == isV4 else { return false }
        if isV4 {
            let mask: UInt64 = prefixLength == 0 ? 0 : (UInt64(0xFFFF_FFFF) << UInt64(32 - prefixLength)) & 0xFFFF_FFFF
            return ip.low & mask == low & mask
        }
        let highBits = min(prefixLength, 64)
        let lowBits = max(prefixLength - 64, 0)
        let highMask: UInt64 = highBits == 0 ? 0 : ~UInt64(0) << UInt64(64 - highBits)
        let lowMask: UInt64 = lowBits == 0 ? 0 : ~UInt64(0) << UInt64(64 - lowBits)
        return ip.high & highMask == high & highMask && ip.low & lowMask == low & lowMask
    }
}
