import ArgumentParser
import Foundation

/// A lifetime written the way Go and Istio write them: `30s`, `10m`, `24h`, `90d`, or combinations such as `1h30m`.
struct TTL: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let seconds: TimeInterval
    let text: String

    /// The longest lifetime any option takes: a hundred years, far past every limit the commands
    /// apply, and short enough to count in whole seconds.
    static let longest: TimeInterval = 100 * 365 * 86400

    /// A lifetime in the largest whole unit that writes it exactly (`90d`, `36h`, `10s`).
    static func words(_ seconds: TimeInterval) -> String {
        let whole = Int(seconds.rounded())
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] where whole >= size && whole % size == 0 {
            return "\(whole / size)\(unit)"
        }
        return "\(whole)s"
    }

    /// Parses an option's value, saying what was wrong (`transform:` of the options).
    static func parse(_ text: String) throws -> TTL {
        guard let ttl = TTL(argument: text) else {
            if let value = TTL.total(text), value > longest {
                throw ValidationError("\(text) is longer than a hundred years; give a lifetime such as 24h or 30d")
            }
            if let value = TTL.total(text), value > 0, value < 1 {
                throw ValidationError("\(text) is shorter than a second; give a lifetime of at least 1s, such as 30s or 10m")
            }
            throw ValidationError(
                "expected a positive lifetime in s, m, h or d, such as 30s, 10m, 24h or 1h30m, every number with its unit; a bare number alone is seconds (got \"\(text)\")")
        }
        return ttl
    }

    init?(argument: String) {
        guard let total = Self.total(argument), total >= 1, total <= Self.longest else { return nil }
        seconds = total
        text = argument
    }

    /// The seconds `text` stands for, unbounded; `nil` when it is not a lifetime.
    private static func total(_ argument: String) -> TimeInterval? {
        let units: [Character: TimeInterval] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var total: TimeInterval = 0
        var number = ""
        for character in argument {
            if character.isNumber || character == "." {
                number.append(character)
            } else if let unit = units[character], let value = Double(number) {
                total += value * unit
                number = ""
            } else {
                return nil
            }
        }
        if !number.isEmpty {
            // A bare number is seconds only when it is the whole lifetime: 10m10 is a typo.
            guard number == argument, let value = Double(number) else { return nil }
            total += value
        }
        return total.isFinite ? total : nil
    }

    var description: String { text }

    static var defaultCompletionKind: CompletionKind { .default }
}
