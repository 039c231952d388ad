extension SyncStatus {
    /// The CONFIG column for one proxy: `SYNCED`, `STALE (acked N, current M)` or `NACK: detail`.
    public func configColumn(for proxy: Proxy) -> String {
        if let nack = proxy.lastNack { return "NACK: \(nack)" }
        if proxy.synced { return "SYNCED" }
        let acked = proxy.ackedConfigVersion.map { String($0) } ?? "none"
        let current = configVersion.map { String($0) } ?? "none"
        return "STALE (acked \(acked), current \(current))"
    }

    /// A table like `istioctl proxy-status`: NAME, SPIFFE ID, ACKED (the config version the proxy
    /// last accepted, `-` for none), CONFIG, CERT EXPIRES, STATE.
    public func table() -> String {
        let header = ["NAME", "SPIFFE ID", "ACKED", "CONFIG", "CERT EXPIRES", "STATE"]
        let rows = [header] + proxies.map { proxy in
            [
                proxy.displayName, proxy.spiffeID, proxy.ackedConfigVersion.map { String($0) } ?? "-",
                configColumn(for: proxy), proxy.certificateNotAfter, proxy.state,
            ]
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 3, withPad: " ", startingAt: 0)
            }.joined() + "\n"
        }.joined()
    }
}
