/// Parses durations in Go's syntax (`300ms`, `1.5s`, `2h45m`), the form Istio's API uses.
enum GoDuration {
    private static let units: [(String, Double)] = [
        ("ns", 1e-6), ("us", 1e-3), ("\u{B5}s", 1e-3), ("\u{3BC}s", 1e-3), ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000),
    ]

    /// The longest duration Go's `time.Duration` holds (2^63 − 1 ns, about 2562047h), in milliseconds.
    static let maximumMilliseconds = Double(Int64.max) / 1e6

    /// The duration in milliseconds, or `nil` when the text is not a duration. A duration past
    /// ``maximumMilliseconds`` is returned as it is: Go refuses it, and callers say so.
    static func milliseconds(_ text: String) -> Double? {
        var rest = Substring(text)
        // Go's ParseDuration takes a leading + (a negative duration is no timeout).
        if rest.first == "+" { rest = rest.dropFirst() }
        guard !rest.isEmpty else { return nil }
        if rest == "0" { return 0 }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !$0.isNumber && $0 != "." }
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.1
        }
        return total
    }
}
