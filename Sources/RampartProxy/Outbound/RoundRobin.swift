import Synchronization

/// Round-robin endpoint choice per service, shared by all of the proxy's outbound connections.
public final class RoundRobin: Sendable {
    private let next = Mutex<[String: Int]>([:])

    /// Creates a balancer.
    public init() {}

    /// The endpoint to use next for `service`, or `nil` when it has none.
    public func pick<Element>(_ endpoints: [Element], service: String) -> Element? {
        guard !endpoints.isEmpty else { return nil }
        let index = next.withLock { counters -> Int in
            let value = counters[service, default: 0]
            counters[service] = value &+ 1
            return value
        }
        return endpoints[index % endpoints.count]
    }
}
