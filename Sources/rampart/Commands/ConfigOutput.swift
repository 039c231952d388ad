import Foundation
import RampartPolicy
import RampartStore

/// How the config commands print: kubectl's resource names, tables and ages.
enum ConfigOutput {
    /// Writes a line to standard error.
    static func stderr(_ text: String) {
        StandardError.write(Data((text + "\n").utf8))
    }

    /// `authorizationpolicy.security.istio.io shop/name`.
    static func qualified(_ key: ConfigResourceKey) -> String {
        let kind = ResourceKind(rawValue: key.kind).map(ConfigKind.qualified) ?? key.kind.lowercased()
        return "\(kind) \(key.namespace)/\(key.name)"
    }

    /// A table as kubectl prints Istio's kinds: NAMESPACE (when listing every namespace), NAME
    /// (written KIND/NAME when `kind` is given, as with several kinds), the column Istio's CRD
    /// adds (ACTION of an AuthorizationPolicy, MODE of a PeerAuthentication), GENERATION and AGE;
    /// columns padded as kubectl pads them.
    static func table(_ records: [ConfigResourceRecord], now: Date, kind: ResourceKind? = nil, namespaces: Bool) -> String {
        let recordKind = records.first.flatMap { ResourceKind(rawValue: $0.kind) }
        let extra: String? =
            switch recordKind {
            case .authorizationPolicy?: "ACTION"
            case .peerAuthentication?: "MODE"
            default: nil
            }
        var header = namespaces ? ["NAMESPACE", "NAME"] : ["NAME"]
        if let extra { header.append(extra) }
        header += ["GENERATION", "AGE"]
        let rows = [header] + records.map { record -> [String] in
            var row = namespaces ? [record.namespace] : []
            row.append(kind.map { "\(ConfigKind.qualified($0))/\(record.name)" } ?? record.name)
            if extra != nil { row.append(printedColumn(record)) }
            return row + [String(record.generation), age(from: record.createdAt, to: now)]
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 3, withPad: " ", startingAt: 0)
            }.joined() + "\n"
        }.joined()
    }

    /// The `spec.action` of an AuthorizationPolicy as stored (empty when the document leaves it
    /// out, as kubectl prints an absent field), or the mode of a PeerAuthentication (UNSET when
    /// it names none).
    private static func printedColumn(_ record: ConfigResourceRecord) -> String {
        switch PolicyLoader.load(yaml: record.yaml, file: record.name).resources.first {
        case .authorizationPolicy(let policy)?: return policy.actionGiven ? policy.action.rawValue : ""
        case .peerAuthentication(let peer)?: return peer.mode.rawValue
        default: return ""
        }
    }

    /// One resource as JSON: kind, namespace, name, generation, times and the YAML as applied.
    static func json(_ record: ConfigResourceRecord) -> [String: Any] {
        let iso = ISO8601DateFormatter()
        return [
            "kind": record.kind, "api_group": ConfigKind.group, "namespace": record.namespace, "name": record.name,
            "generation": record.generation, "created_at": iso.string(from: record.createdAt),
            "updated_at": iso.string(from: record.updatedAt), "yaml": record.yaml,
        ]
    }

    /// One resource as kubectl prints it in JSON: the document as applied, with its namespace
    /// (`default` when the document names none), this store's generation, and the time it was
    /// first stored as `creationTimestamp` (one the document gives is replaced, as an API server
    /// replaces it: the store's time orders competing PeerAuthentications). What another API
    /// server set in a document exported from it (`uid`, `resourceVersion`, `managedFields`,
    /// `status`) is left out.
    static func object(_ record: ConfigResourceRecord) -> [String: Any] {
        var object = ((try? PlainYAML.parse(record.yaml)) as? [String: Any]) ?? [:]
        var metadata = object["metadata"] as? [String: Any] ?? [:]
        for field in YAMLDocuments.serverMetadata { metadata[field] = nil }
        metadata["name"] = record.name
        metadata["namespace"] = record.namespace
        metadata["generation"] = record.generation
        metadata["creationTimestamp"] = ISO8601DateFormatter().string(from: record.createdAt)
        object["metadata"] = metadata
        object["status"] = nil
        return object
    }

    /// A short age in kubectl's style: `42s`, `5m10s`, `3h`, `2d4h`, `300d`.
    static func age(from start: Date, to now: Date) -> String {
        let seconds = max(0, Int(now.timeIntervalSince(start)))
        let minutes = seconds / 60, hours = seconds / 3600, days = seconds / 86400
        switch seconds {
        case ..<120: return "\(seconds)s"
        case ..<600: return seconds % 60 == 0 ? "\(minutes)m" : "\(minutes)m\(seconds % 60)s"
        case ..<(3 * 3600): return "\(minutes)m"
        case ..<(8 * 3600): return minutes % 60 == 0 ? "\(hours)h" : "\(hours)h\(minutes % 60)m"
        case ..<(48 * 3600): return "\(hours)h"
        case ..<(8 * 86400): return hours % 24 == 0 ? "\(days)d" : "\(days)d\(hours % 24)h"
        case ..<(2 * 365 * 86400): return "\(days)d"
        default: return "\(days / 365)y\(days % 365 == 0 ? "" : "\(days % 365)d")"
        }
    }
}

/// Who runs a command that changes the store, as its audit events name them: `admin:<user>`, the
/// login name of the effective user (or `admin:uid<N>` when it has none), so that the audit log
/// tells operators apart.
enum Operator {
    static var actor: String {
        let uid = geteuid()
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "admin:uid\(uid)" }
        return "admin:\(String(cString: name))"
    }
}
