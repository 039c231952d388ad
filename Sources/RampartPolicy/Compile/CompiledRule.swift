/// A rule compiled to checks: `from` and `to` are lists of ANDed checks (ORed with each other),
/// `when` is one ANDed list. A class so the per-request loops do not copy its fields.
final class CompiledRule: Sendable {
    let index: Int
    let froms: [[Check]]
    let tos: [[Check]]
    let whens: [Check]
    /// Whether any check reads an HTTP-only attribute.
    let hasHTTPOnly: Bool
    /// Whether every check reads an HTTP-only attribute and there is at least one.
    let onlyHTTPOnly: Bool

    init(index: Int, froms: [[Check]], tos: [[Check]], whens: [Check]) {
        self.index = index
        self.froms = froms
        self.tos = tos
        self.whens = whens
        let all = Array(froms.joined()) + Array(tos.joined()) + whens
        hasHTTPOnly = all.contains { $0.attribute.isHTTPOnly }
        onlyHTTPOnly = !all.isEmpty && all.allSatisfy { $0.attribute.isHTTPOnly }
    }

    /// Whether the request matches. On TCP, `dropHTTP` ignores HTTP-only checks (DENY, AUDIT,
    /// CUSTOM); ALLOW rules with HTTP-only checks are filtered out before this is called.
    @inline(__always)
    func matches(_ request: PreparedRequest, dropHTTP: Bool) -> Bool {
        if !froms.isEmpty && !Self.any(froms, request, dropHTTP) { return false }
        if !tos.isEmpty && !Self.any(tos, request, dropHTTP) { return false }
        return Self.all(whens, request, dropHTTP)
    }

    /// Whether some list of checks all pass; elements are borrowed in place, not copied.
    @inline(__always)
    static func any(_ lists: [[Check]], _ request: PreparedRequest, _ dropHTTP: Bool) -> Bool {
        lists.withUnsafeBufferPointer { lists in
            for index in lists.indices where all(lists[index], request, dropHTTP) { return true }
            return false
        }
    }

    /// Whether every check passes (HTTP-only ones skipped when `dropHTTP`).
    @inline(__always)
    static func all(_ checks: [Check], _ request: PreparedRequest, _ dropHTTP: Bool) -> Bool {
        checks.withUnsafeBufferPointer { checks in
            for index in checks.indices {
                if dropHTTP && checks[index].attribute.isHTTPOnly { continue }
                if !checks[index].passes(request) { return false }
            }
            return true
        }
    }

    /// Why the rule does not match the request, every failing part of it (its `from`, its `to`, each
    /// failing `when` and field), so that fixing one does not reveal another; nil when it matches.
    func firstFailure(_ request: PreparedRequest, dropHTTP: Bool) -> String? {
        var failures: [String] = []
        for (lists, name) in [(froms, "from"), (tos, "to")] where !lists.isEmpty {
            guard !lists.contains(where: { Self.all($0, request, dropHTTP) }) else { continue }
            if lists.count == 1 {
                failures.append(failing(lists[0], request, dropHTTP))
            } else {
                failures.append("no entry of \(name) matched: " + lists.map { failing($0, request, dropHTTP) }.joined(separator: "; "))
            }
        }
        if !Self.all(whens, request, dropHTTP) { failures.append(failing(whens, request, dropHTTP)) }
        return failures.isEmpty ? nil : failures.joined(separator: "; and ")
    }

    /// The checks the request fails, each with what the request had and the values it was
    /// compared with: those of every `from` or `to` entry when none of the entries matches, and
    /// each failing `when` condition; empty when the rule matches.
    func failures(_ request: PreparedRequest, dropHTTP: Bool) -> [ExplainTrace.FieldFailure] {
        var failures: [ExplainTrace.FieldFailure] = []
        for lists in [froms, tos] where !lists.contains(where: { Self.all($0, request, dropHTTP) }) {
            for list in lists { failures += failed(list, request, dropHTTP).map { $0.failure(request) } }
        }
        failures += failed(whens, request, dropHTTP).map { $0.failure(request) }
        return failures
    }

    private func failed(_ checks: [Check], _ request: PreparedRequest, _ dropHTTP: Bool) -> [Check] {
        checks.filter { !(dropHTTP && $0.attribute.isHTTPOnly) && !$0.passes(request) }
    }

    private func failing(_ checks: [Check], _ request: PreparedRequest, _ dropHTTP: Bool) -> String {
        let failed = failed(checks, request, dropHTTP)
        return failed.isEmpty ? "no match" : failed.map { $0.failureText(request) }.joined(separator: ", and ")
    }

    /// The HTTP-only fields of the rule, which TCP traffic cannot be checked against.
    var httpOnlyFields: [String] {
        (Array(froms.joined()) + Array(tos.joined()) + whens).filter { $0.attribute.isHTTPOnly }.map(\.field)
    }

    /// The fields that took part in the request's match (HTTP-only ones left out when
    /// `dropHTTP`): of `from` and `to`, only the entries the request matches, since the entries
    /// are alternatives.
    func fieldsMatched(_ request: PreparedRequest, dropHTTP: Bool) -> [String] {
        let entries = (froms + tos).filter { Self.all($0, request, dropHTTP) }
        return (Array(entries.joined()) + whens).filter { !(dropHTTP && $0.attribute.isHTTPOnly) }.map(\.field)
    }

    /// The fields that took part in the request's match, for explanations.
    func matchedFields(_ request: PreparedRequest, dropHTTP: Bool) -> String {
        let fields = fieldsMatched(request, dropHTTP: dropHTTP)
        return fields.isEmpty ? "empty rule matches every request" : "matched on " + fields.joined(separator: ", ")
    }
}
