import Foundation
import NIOHTTP1

/// Request IDs and trace context, as a sidecar keeps them.
public enum RequestIDs {
    /// The trace headers a proxy passes through unchanged (B3, W3C trace context, Envoy's own).
    public static let traceHeaders = ["x-request-id", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3", "x-ot-span-context"]

    /// Ensures `x-request-id` is set, generating a UUID (as Envoy does) when the client sent none;
    /// returns the value.
    @discardableResult
    public static func ensure(_ headers: inout HTTPHeaders) -> String {
        if let existing = headers.first(name: "x-request-id"), !existing.isEmpty { return existing }
        let id = UUID().uuidString.lowercased()
        headers.replaceOrAdd(name: "x-request-id", value: id)
        return id
    }
}
