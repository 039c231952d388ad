import Synchronization

/// The config the proxy enforces: the last snapshot it accepted, or none yet.
///
/// Read on every connection and request; replaced whole when a snapshot is accepted. A proxy
/// that loses the control plane keeps the last value.
public final class ConfigHolder: Sendable {
    private let value = Mutex<ProxyConfig?>(nil)
    private let connected = Mutex(false)

    /// Creates an empty holder: the proxy has no config and denies inbound requests.
    public init() {}

    /// The config in force, if any was ever accepted.
    public var current: ProxyConfig? { value.withLock { $0 } }

    /// Puts a new config in force.
    public func install(_ config: ProxyConfig) { value.withLock { $0 = config } }

    /// Whether the config stream is open now.
    public var isConnected: Bool {
        get { connected.withLock { $0 } }
        set { connected.withLock { $0 = newValue } }
    }
}
