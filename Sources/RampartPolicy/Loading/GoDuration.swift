/// Parses durations in Go's syntax (`300ms`, `1.5s`, `2h45m`), the form Istio's API uses, as Go's
/// `time.ParseDuration` reads them: in whole nanoseconds, each fraction truncated by the same
/// arithmetic, so that a duration is one millisecond here exactly when it is one there.
enum GoDuration {
    /// The units, in nanoseconds; both micro signs (U+00B5 and U+03BC) are Go's.
    private static let units: [([UInt8], UInt64)] = [
        (Array("ns".utf8), 1), (Array("us".utf8), 1_000), (Array("\u{B5}s".utf8), 1_000), (Array("\u{3BC}s".utf8), 1_000),
        (Array("ms".utf8), 1_000_000), (Array("s".utf8), 1_000_000_000), (Array("m".utf8), 60_000_000_000),
        (Array("h".utf8), 3_600_000_000_000),
    ]

    /// The longest duration Go's `time.Duration` holds (2^63 − 1 ns, about 2562047h), in milliseconds.
    static let maximumMilliseconds = Double(Int64.max) / 1e6

    private static let limit = UInt64(1) << 63

    /// The duration in milliseconds, or `nil` when the text is not a duration. A duration past
    /// ``maximumMilliseconds`` is returned as infinity: Go refuses it, and callers say so.
    static func milliseconds(_ text: String) -> Double? {
        var rest = Substring(text).utf8[...]
        // Go's ParseDuration takes a leading + (a negative duration is no timeout).
        if rest.first == UInt8(ascii: "+") { rest = rest.dropFirst() }
        guard !rest.isEmpty else { return nil }
        if rest.elementsEqual("0".utf8) { return 0 }
        var total: UInt64 = 0
        var overflow = false
        while let first = rest.first {
            guard first == UInt8(ascii: ".") || first.isASCIIDigit else { return nil }
            // The whole part: past 2^63 Go refuses the text.
            var whole: UInt64 = 0
            let integerDigits = rest.prefix(while: \.isASCIIDigit)
            for digit in integerDigits {
                guard whole <= limit / 10 else { return .infinity }
                whole = whole * 10 + UInt64(digit - UInt8(ascii: "0"))
                guard whole <= limit else { return .infinity }
            }
            rest = rest.dropFirst(integerDigits.count)
            // The fraction: digits past what 63 bits hold are read and dropped.
            var fraction: UInt64 = 0
            var scale = 1.0
            var fractionDigits = 0
            if rest.first == UInt8(ascii: ".") {
                rest = rest.dropFirst()
                var dropping = false
                for digit in rest.prefix(while: \.isASCIIDigit) {
                    fractionDigits += 1
                    if dropping { continue }
                    let next = fraction <= (limit - 1) / 10 ? fraction * 10 + UInt64(digit - UInt8(ascii: "0")) : limit + 1
                    guard next <= limit else {
                        dropping = true
                        continue
                    }
                    fraction = next
                    scale *= 10
                }
                rest = rest.dropFirst(fractionDigits)
            }
            guard !integerDigits.isEmpty || fractionDigits > 0 else { return nil }
            let unitText = rest.prefix { $0 != UInt8(ascii: ".") && !$0.isASCIIDigit }
            guard let unit = units.first(where: { $0.0.elementsEqual(unitText) })?.1 else { return nil }
            rest = rest.dropFirst(unitText.count)
            guard whole <= limit / unit else {
                overflow = true
                continue
            }
            var value = whole * unit
            if fraction > 0 {
                value += UInt64(Double(fraction) * (Double(unit) / scale))
                if value > limit { overflow = true }
            }
            let sum = total.addingReportingOverflow(value)
            if sum.overflow || sum.partialValue > limit { overflow = true }
            total = sum.partialValue
        }
        if overflow || total > limit - 1 { return .infinity }
        // Whole milliseconds and the rest apart, so that a long duration stays whole when it is.
        return Double(total / 1_000_000) + Double(total % 1_000_000) / 1e6
    }
}
