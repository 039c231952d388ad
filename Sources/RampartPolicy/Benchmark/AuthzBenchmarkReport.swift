import Foundation

extension AuthzBenchmark {
    /// Renders results as a table, one line per mesh and path, with the ratio to the first mesh.
    public static func renderText(_ results: [Result]) -> String {
        guard let first = results.first else { return "no meshes measured" }
        var lines = [
            "authz evaluator, one thread, \(first.workloads) workloads, \(first.requests) prebuilt requests per mesh;"
                + " medians over \(first.perRequest.rounds.count) interleaved rounds; decisions/s, ns/decision and x first"
                + " (ratio to the first mesh) are in thread CPU time, wall ns beside them",
            pad(["policies", "path", "decisions/s", "ns/decision", "x first", "wall ns", "applicable", "allow/deny", "load s"]),
        ]
        for result in results {
            for measurement in result.measurements {
                lines.append(
                    pad([
                        "\(result.policies)", measurement.path.rawValue, grouped(measurement.decisionsPerSecond),
                        fixed(measurement.nanosecondsPerDecision, 1), fixed(measurement.ratioToFirst, 2),
                        fixed(measurement.wallNanosecondsPerDecision, 1),
                        fixed(result.applicablePolicies, 1), "\(result.allowed)/\(result.denied)",
                        fixed(result.loadSeconds, 2),
                    ]))
            }
            if result.validationErrors > 0 {
                lines.append("  warning: \(result.validationErrors) validation errors in the generated mesh")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Renders results as a JSON-compatible dictionary (`{"meshes": [...]}`).
    public static func renderJSON(_ results: [Result]) -> [String: Any] {
        ["meshes": results.map(\.jsonObject)]
    }

    private static func pad(_ cells: [String]) -> String {
        let widths = [8, 17, 13, 11, 7, 9, 10, 11, 6]
        return zip(cells, widths).map { cell, width in
            String(repeating: " ", count: max(0, width - cell.count)) + cell
        }.joined(separator: "  ")
    }

    private static func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    private static func grouped(_ value: Double) -> String {
        let digits = String(Int(value.rounded()))
        var out = ""
        for (offset, character) in digits.reversed().enumerated() {
            if offset > 0 && offset % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return String(out.reversed())
    }
}

extension AuthzBenchmark.Result {
    /// A JSON-compatible representation.
    public var jsonObject: [String: Any] {
        [
            "policies": policies, "workloads": workloads, "requests": requests, "load_seconds": loadSeconds,
            "validation_errors": validationErrors, "applicable_policies": applicablePolicies, "allowed": allowed,
            "denied": denied, "per_request": perRequest.jsonObject, "resolved_workload": resolvedWorkload.jsonObject,
            "uncached_lookup": uncachedLookup.jsonObject,
        ]
    }
}

extension AuthzBenchmark.Measurement {
    /// A JSON-compatible representation.
    public var jsonObject: [String: Any] {
        [
            "path": path.rawValue, "decisions_per_second": decisionsPerSecond,
            "ns_per_decision": nanosecondsPerDecision, "wall_ns_per_decision": wallNanosecondsPerDecision,
            "ratio_to_first": ratioToFirst, "rounds_ns": rounds,
            "decisions": decisions,
        ]
    }
}
