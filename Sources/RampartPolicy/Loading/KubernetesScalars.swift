import Yams

/// The type of a plain YAML scalar as kubectl reads it.
///
/// kubectl turns YAML into JSON with go-yaml v2, whose scalars are YAML 1.1's with two
/// differences from Yams' resolver: `y`, `Y`, `n` and `N` are booleans, and there are no base-60
/// numbers (`10:30` and `1:30.5` are strings). A value of a string field written `y` is refused
/// by the API server as a boolean, and a header value written `10:30` reaches it as the string it
/// looks like; Rampart reads both the same way.
enum KubernetesScalars {
    static func resolveTag(of node: Node) -> Tag.Name {
        let tag = Resolver.default.resolveTag(of: node)
        guard case .scalar(let scalar) = node, Tag.Name(rawValue: scalar.tag.description) == .implicit else { return tag }
        switch tag {
        case .str where ["y", "Y", "n", "N"].contains(scalar.string):
            return .bool
        case .int where scalar.string.contains(":"), .float where scalar.string.contains(":"):
            return .str
        default:
            return tag
        }
    }
}

extension KubernetesScalars {
    /// What a mapping key becomes when kubectl turns the YAML into JSON.
    enum KeyReading: Equatable {
        /// The JSON object key.
        case key(String)
        /// A key kubectl cannot turn into JSON (a null key, an integer past Int64): the whole file is refused.
        case unsupported(String)
    }

    /// The JSON key kubectl sends for a YAML mapping key.
    ///
    /// go-yaml v2 types an unquoted key as it types a value, and sigs.k8s.io/yaml then writes an
    /// integer key in decimal (`0x50`, `+80` and `8_0` become `80`, `010` is octal and becomes `8`),
    /// a float key as Go's shortest `%g` of its float32 (`1e3` becomes `1000`, `080` — not an octal
    /// number — the float `80`), a boolean key as `true` or `false` (`yes`, `on`, `y`), and refuses
    /// a null key (`null`, `~`) or an integer past Int64. Quoted keys and keys with an explicit tag
    /// are sent as written.
    static func jsonKey(of node: Node) -> KeyReading? {
        guard case .scalar(let scalar) = node else { return nil }
        let text = scalar.string
        guard scalar.style == .plain else { return .key(text) }
        // Field names and most other keys are strings at once, without looking at the tag.
        let resolved = GoYAMLv2.resolve(text)
        if resolved == .string { return .key(text) }
        // Yams resolves a key's implicit tag in place once the mapping is hashed, so a plain key
        // whose tag is what its text resolves to was written without one.
        let tag = Tag.Name(rawValue: scalar.tag.description)
        guard tag == .implicit || tag == Resolver.default.resolveTag(of: Node.scalar(.init(text))) else { return .key(text) }
        switch resolved {
        case .string: return .key(text)
        case .bool(let value): return .key(value ? "true" : "false")
        case .int(let value): return .key(String(value))
        case .uint: return .unsupported("an integer larger than a signed 64-bit one")
        case .float(let value): return .key(GoYAMLv2.shortestFloat32(value))
        case .null: return .unsupported("null")
        }
    }
}

/// The plain-scalar typing of go-yaml v2 (`resolve.go`), which kubectl's YAML reader uses.
enum GoYAMLv2 {
    enum Scalar: Equatable {
        case string, null, bool(Bool), int(Int64), uint(UInt64), float(Double)
    }

    private static let words: [String: Scalar] = {
        var table: [String: Scalar] = [:]
        for word in ["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"] { table[word] = .bool(true) }
        for word in ["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"] { table[word] = .bool(false) }
        for word in ["", "~", "null", "Null", "NULL"] { table[word] = .null }
        for word in [".nan", ".NaN", ".NAN"] { table[word] = .float(.nan) }
        for word in [".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"] { table[word] = .float(.infinity) }
        for word in ["-.inf", "-.Inf", "-.INF"] { table[word] = .float(-.infinity) }
        return table
    }()

    /// The type and value go-yaml v2 gives an unquoted scalar without a tag. Timestamps stay
    /// strings, as go-yaml v2 keeps them when decoding into an untyped value.
    static func resolve(_ text: String) -> Scalar {
        guard let first = text.utf8.first else { return .null }
        let numeric = first == UInt8(ascii: "+") || first == UInt8(ascii: "-") || (48...57).contains(first)
        let mapped = "yYnNtTfFoO~".utf8.contains(first)
        guard numeric || mapped || first == UInt8(ascii: ".") else { return .string }
        if let word = words[text] { return word }
        if mapped { return .string }
        if first == UInt8(ascii: ".") {
            return goFloat(text).map(Scalar.float) ?? .string
        }
        let plain = text.replacingOccurrences(of: "_", with: "")
        if let value = parseInteger(plain) { return value }
        if isYAMLStyleFloat(plain), let value = goFloat(plain) { return .float(value) }
        return .string
    }

    /// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`: an optional sign, then
    /// `0x`, `0o` or `0b` and digits of that base, `0` and octal digits, or decimal digits.
    private static func parseInteger(_ text: String) -> Scalar? {
        var body = Substring(text)
        var negative = false
        var signed = false
        if let sign = body.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            signed = true
            body = body.dropFirst()
        }
        var radix = 10
        let lower = body.lowercased()
        if lower.hasPrefix("0x") {
            radix = 16; body = body.dropFirst(2)
        } else if lower.hasPrefix("0o") {
            radix = 8; body = body.dropFirst(2)
        } else if lower.hasPrefix("0b") {
            radix = 2; body = body.dropFirst(2)
        } else if body.count > 1 && body.first == "0" {
            radix = 8; body = body.dropFirst()
        }
        guard !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.hexDigitValue.map { $0 < radix } == true }),
            let magnitude = UInt64(body, radix: radix)
        else { return nil }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return .int(magnitude == UInt64(Int64.max) + 1 ? .min : -Int64(magnitude))
        }
        if magnitude <= UInt64(Int64.max) { return .int(Int64(magnitude)) }
        // ParseUint takes no sign.
        return signed ? nil : .uint(magnitude)
    }

    /// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
    private static func isYAMLStyleFloat(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        func digits() -> Int {
            let count = bytes.prefix(while: { (48...57).contains($0) }).count
            bytes = bytes.dropFirst(count)
            return count
        }
        if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            guard digits() > 0 else { return false }
        } else {
            guard digits() > 0 else { return false }
            if bytes.first == UInt8(ascii: ".") {
                bytes = bytes.dropFirst()
                _ = digits()
            }
        }
        if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }

    /// Go's `strconv.ParseFloat(s, 64)` for the decimal forms YAML scalars take (no hex floats).
    private static func goFloat(_ text: String) -> Double? {
        let lower = text.lowercased()
        let body = lower.hasPrefix("+") || lower.hasPrefix("-") ? String(lower.dropFirst()) : lower
        if ["inf", "infinity"].contains(body) { return lower.hasPrefix("-") ? -.infinity : .infinity }
        if body == "nan" { return .nan }
        guard body.utf8.allSatisfy({ (48...57).contains($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e")
            || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") })
        else { return nil }
        return Double(text)
    }

    /// Go's `strconv.FormatFloat(value, 'g', -1, 32)`, with sigs.k8s.io/yaml's spellings of the
    /// non-finite values: the shortest digits that read back as the same float32, in `%e` form
    /// when the decimal exponent is below -4 or at least 6.
    static func shortestFloat32(_ value: Double) -> String {
        let single = Float(value)
        if single.isNaN { return ".nan" }
        if single.isInfinite { return single < 0 ? "-.inf" : ".inf" }
        let negative = single.sign == .minus
        // Swift prints a Float's shortest round-trip digits; take them and the decimal point's place.
        var text = single.magnitude.description
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = String(text[..<e])
        }
        let point = text.firstIndex(of: ".").map { text.distance(from: text.startIndex, to: $0) } ?? text.count
        var digits = Array(text.filter { $0 != "." })
        var decimalPoint = point + exponent
        while digits.first == "0" {
            digits.removeFirst()
            decimalPoint -= 1
        }
        while digits.last == "0" { digits.removeLast() }
        let sign = negative ? "-" : ""
        guard !digits.isEmpty else { return sign + "0" }
        let e = decimalPoint - 1
        if e < -4 || e >= 6 {
            let fraction = digits.count > 1 ? "." + String(digits.dropFirst()) : ""
            let magnitude = abs(e)
            return sign + String(digits[0]) + fraction + (e < 0 ? "e-" : "e+") + (magnitude < 10 ? "0" : "") + String(magnitude)
        }
        if decimalPoint <= 0 {
            return sign + "0." + String(repeating: "0", count: -decimalPoint) + String(digits)
        }
        if digits.count <= decimalPoint {
            return sign + String(digits) + String(repeating: "0", count: decimalPoint - digits.count)
        }
        return sign + String(digits[..<decimalPoint]) + "." + String(digits[decimalPoint...])
    }
}
