/// ASCII character classes of single bytes, for parsers that read UTF-8 bytes (addresses,
/// durations, URIs, header values) where Swift's `Character` classes would also take other scripts'
/// digits and letters.
extension UInt8 {
    /// `0` to `9`.
    var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }

    /// `0` to `9`, `a` to `f` and `A` to `F`.
    var isASCIIHexDigit: Bool { isASCIIDigit || ((self | 0x20) >= UInt8(ascii: "a") && (self | 0x20) <= UInt8(ascii: "f")) }

    /// `a` to `z` and `A` to `Z`.
    var isASCIILetter: Bool { (self | 0x20) >= UInt8(ascii: "a") && (self | 0x20) <= UInt8(ascii: "z") }
}
