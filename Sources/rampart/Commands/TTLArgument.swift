import ArgumentParser
import Foundation

/// A lifetime written the way Go and Istio write them: `30s`, `10m`, `24h`, `90d`, or combinations such as `1h30m`.
struct TTL: ExpressibleByArgument, Sendable, CustomStringConvertible {
    let seconds: TimeInterval
    let text: String

    init?(argument: String) {
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
            guard let value = Double(number) else { return nil }
            total += value
        }
        guard total > 0 else { return nil }
        seconds = total
        text = argument
    }

    var description: String { text }

    static var defaultCompletionKind: CompletionKind { .default }
}
