import Foundation
import Yams

/// Turns one YAML document into a security resource, reporting every schema problem it finds.
struct ResourceDecoder {
    let context: DecodeContext

    /// What every resource starts with: its kind, metadata and top-level fields.
    private struct Header {
        let kind: ResourceKind
        let metadata: ResourceMetadata
        let fields: [String: Node]
        let line: Int
    }

    /// Reads the document's apiVersion, kind and metadata; `nil` (reported) when it is not a
    /// resource of a supported kind.
    private func header(_ root: Node) -> Header? {
        let documentLine = DecodeContext.line(of: root)
        guard case .mapping = root else {
            context.report(
                .notAResource, "", root, "a document must be a mapping with apiVersion, kind, metadata and spec",
                fix: "write the resource as a YAML mapping")
            return nil
        }
        // What the document is comes first: a document of another kind is one finding, not a
        // list of fields a security resource does not have.
        let apiVersion = root["apiVersion"].flatMap { context.string($0, "apiVersion") } ?? ""
        let kindName = root["kind"].flatMap { context.string($0, "kind") } ?? ""
        guard let kind = ResourceKind(rawValue: kindName), ResourceKind.apiVersions.contains(apiVersion) else {
            let (code, field, message, fix) = Self.unsupported(apiVersion: apiVersion, kind: kindName)
            // At the field's own line when the document has it, else at the document's.
            let line = root[field].map { DecodeContext.line(of: $0) } ?? documentLine
            context.report(code, field, line: line, message, fix: fix)
            // A known kind in a version Rampart does not read still names its resource.
            if let kind = ResourceKind(rawValue: kindName), let metadata = root["metadata"] {
                let name = metadata["name"]?.string ?? ""
                let namespace = metadata["namespace"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? context.defaultNamespace
                context.attribute(ResourceID(kind: kind, namespace: namespace, name: name), since: context.diagnostics.count - 1)
            }
            return nil
        }
        // Findings from here on, the top level's unknown fields included, name the resource.
        let start = context.diagnostics.count
        let top = context.mapping(
            root, "", allowed: ["apiVersion", "kind", "metadata", "spec", "status"], what: "a resource") ?? []
        let fields = Dictionary(top.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        let metadata = decodeMetadata(fields["metadata"], kind: kind, line: documentLine)
        context.attribute(ResourceID(kind: kind, namespace: metadata.namespace, name: metadata.name), since: start)
        return Header(kind: kind, metadata: metadata, fields: fields, line: documentLine)
    }

    /// The kind, namespace and name of the document, its spec left unread (for `delete -f`).
    func identify(_ root: Node) -> (id: ResourceID, line: Int, namespaceGiven: Bool)? {
        header(root).map {
            (ResourceID(kind: $0.kind, namespace: $0.metadata.namespace, name: $0.metadata.name), $0.line,
             $0.metadata.namespaceGiven)
        }
    }

    /// Decodes the document; `nil` when it is not a resource at all or has fatal schema errors.
    func decode(_ root: Node) -> SecurityResource? {
        guard let header = header(root) else { return nil }
        let kind = header.kind
        let metadata = header.metadata
        let fields = header.fields
        let documentLine = header.line
        let errorsBefore = context.diagnostics.count
        let spec = fields["spec"].flatMap { DecodeContext.isNull($0) ? nil : $0 }
        let resource: SecurityResource?
        switch kind {
        case .authorizationPolicy:
            resource = AuthorizationPolicyDecoder(context: context)
                .decode(spec, metadata: metadata, location: location(documentLine))
                .map(SecurityResource.authorizationPolicy)
        case .peerAuthentication:
            resource = PeerAuthenticationDecoder(context: context)
                .decode(spec, metadata: metadata, location: location(documentLine))
                .map(SecurityResource.peerAuthentication)
        case .requestAuthentication:
            resource = RequestAuthenticationDecoder(context: context)
                .decode(spec, metadata: metadata, location: location(documentLine))
                .map(SecurityResource.requestAuthentication)
        }
        if context.diagnostics.count > errorsBefore, resource == nil { return nil }
        // Rebuild with the final field lines (they were still being recorded while decoding).
        return resource.map { rebind($0, location: location(documentLine)) }
    }

    /// The field, message and fix for a document that is not a supported security resource.
    static func unsupported(apiVersion: String, kind: String) -> (
        code: DiagnosticCode, field: String, message: String, fix: String
    ) {
        let known = ResourceKind.allCases.map(\.rawValue)
        let supported = "Rampart reads \(known.joined(separator: ", ")) of security.istio.io/v1 or v1beta1"
        if kind.isEmpty || apiVersion.isEmpty {
            let missing = kind.isEmpty ? "kind" : "apiVersion"
            return (.unknownKind, missing, "the document has no \(missing); \(supported)", "set apiVersion: security.istio.io/v1 and kind")
        }
        if kind == "List" || kind.hasSuffix("List") {
            return (
                .listWithoutItems, "items",
                "a \(kind) holds its resources in a list under items, and this one has none",
                "put the resources in a list under items: (each item a resource), or write each as a document of its own, separated by lines holding only ---"
            )
        }
        if !apiVersion.hasPrefix("security.istio.io/"), known.contains(kind) {
            // The kind is one of Rampart's: the group is what is wrong.
            let parts = apiVersion.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let (group, version) = parts.count == 2 ? (parts[0], parts[1]) : ("", apiVersion)
            let near = Self.editDistance(group, "security.istio.io") <= 3 ? " (a misspelling of security.istio.io?)" : ""
            let names = group.isEmpty ? "names no group" : "names the group \(group)\(near)"
            return (
                .unknownKind, "apiVersion",
                "\(kind) is a kind of security.istio.io, and apiVersion \(apiVersion) \(names); \(supported)",
                "write apiVersion: security.istio.io/\(["v1", "v1beta1"].contains(version) ? version : "v1")"
            )
        }
        guard apiVersion.hasPrefix("security.istio.io/") else {
            return (
                .unknownKind, "kind", "\(kind) (\(apiVersion)) is not a security policy; \(supported)",
                "remove this document, or leave its file out of the paths given"
            )
        }
        if let match = known.first(where: { $0.lowercased() == kind.lowercased() })
            ?? known.first(where: { Self.editDistance($0.lowercased(), kind.lowercased()) <= 3 })
        {
            if match != kind { return (.unknownKind, "kind", "unknown kind \(kind); \(supported)", "did you mean kind: \(match)?") }
        } else {
            return (.unknownKind, "kind", "unknown kind \(kind); \(supported)", "use one of \(known.joined(separator: ", "))")
        }
        return (
            .unknownKind, "apiVersion", "\(apiVersion) is not a version Rampart reads; \(supported)",
            "set apiVersion: security.istio.io/v1"
        )
    }

    /// The Levenshtein distance between two short strings; for strings whose lengths differ by
    /// more than `exactUpTo`, that difference (a lower bound), so that a megabyte-long value costs
    /// no quadratic work.
    static func editDistance(_ a: String, _ b: String, exactUpTo: Int = 8) -> Int {
        let a = Array(a), b = Array(b)
        if abs(a.count - b.count) > exactUpTo { return abs(a.count - b.count) }
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let replaced = previous + (a[i - 1] == b[j - 1] ? 0 : 1)
                previous = row[j]
                row[j] = min(replaced, row[j] + 1, row[j - 1] + 1)
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }

    private func location(_ line: Int) -> SourceLocation {
        SourceLocation(file: context.file, line: line, fieldLines: context.fieldLines)
    }

    private func rebind(_ resource: SecurityResource, location: SourceLocation) -> SecurityResource {
        switch resource {
        case .authorizationPolicy(let p):
            return .authorizationPolicy(
                AuthorizationPolicy(
                    metadata: p.metadata, location: location, selector: p.selector, targetRef: p.targetRef,
                    targetRefs: p.targetRefs, targetRefsWritten: p.targetRefsWritten, action: p.actionGiven ? p.action : nil, provider: p.provider,
                    rules: p.rules))
        case .peerAuthentication(let p):
            return .peerAuthentication(
                PeerAuthentication(
                    metadata: p.metadata, location: location, selector: p.selector, mode: p.mode,
                    portLevelMTLS: p.portLevelMTLS))
        case .requestAuthentication(let p):
            return .requestAuthentication(
                RequestAuthentication(
                    metadata: p.metadata, location: location, selector: p.selector, targetRef: p.targetRef,
                    targetRefs: p.targetRefs, targetRefsWritten: p.targetRefsWritten, jwtRules: p.jwtRules))
        }
    }

    private func decodeMetadata(_ node: Node?, kind: ResourceKind, line: Int) -> ResourceMetadata {
        guard let node, !DecodeContext.isNull(node) else {
            context.report(
                .badMetadata, "metadata", line: line, "\(kind.rawValue) has no metadata; a name is required",
                fix: "add metadata: {name: ..., namespace: ...}")
            return ResourceMetadata(name: "", namespace: nil, defaultNamespace: context.defaultNamespace)
        }
        let allowed: Set<String> = [
            "name", "namespace", "annotations", "labels", "uid", "resourceVersion", "generation",
            "creationTimestamp", "generateName", "ownerReferences", "finalizers", "managedFields", "selfLink",
            "deletionTimestamp", "deletionGracePeriodSeconds",
        ]
        let entries = context.mapping(node, "metadata", allowed: allowed, what: "metadata") ?? []
        var name = "", namespace: String?, annotations: [String: String] = [:], labels: [String: String] = [:]
        var created: Date?
        // A null field is not set, as in Kubernetes (`namespace: null`, `labels:` left empty).
        for (key, value) in entries where !DecodeContext.isNull(value) {
            let path = "metadata.\(key)"
            switch key {
            // A name of the wrong type is reported as such; its text still names the resource.
            case "name": name = context.string(value, path) ?? value.scalar?.string ?? ""
            // An empty namespace is no namespace, as kubectl reads it.
            case "namespace": namespace = context.string(value, path).flatMap { $0.isEmpty ? nil : $0 }
            case "annotations": annotations = context.stringMap(value, path, what: "annotations") ?? [:]
            case "labels": labels = context.stringMap(value, path, what: "labels") ?? [:]
            case "creationTimestamp":
                guard let text = context.string(value, path) else { break }
                created = Self.timestamp(text)
                if created == nil {
                    context.report(
                        .badMetadata, path, value, "creationTimestamp \"\(text)\" is not an RFC 3339 time",
                        fix: "write it as Kubernetes does, e.g. 2024-05-01T12:00:00Z, or remove it")
                }
            default: break
            }
        }
        return ResourceMetadata(
            name: name, namespace: namespace, annotations: annotations, labels: labels, creationTimestamp: created,
            defaultNamespace: context.defaultNamespace)
    }

    /// An RFC 3339 time, with or without fractional seconds.
    static func timestamp(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }
}

extension DecodeContext {
    /// Decodes `selector: {matchLabels: ...}`.
    func selector(_ node: Node, _ path: String) -> WorkloadSelector? {
        if DecodeContext.isNull(node) { return nil }
        let entries = mapping(node, path, allowed: ["matchLabels"], what: "a workload selector") ?? []
        var labels: [String: String] = [:]
        for (_, value) in entries where !DecodeContext.isNull(value) {
            labels = stringMap(value, "\(path).matchLabels", what: "matchLabels") ?? [:]
        }
        return WorkloadSelector(matchLabels: labels)
    }

    /// Decodes one `targetRef`.
    func targetRef(_ node: Node, _ path: String) -> PolicyTargetReference? {
        guard
            let entries = mapping(
                node, path, allowed: ["group", "kind", "name", "namespace"], what: "a policy target reference")
        else { return nil }
        var values: [String: String] = [:]
        for (key, value) in entries { values[key] = string(value, "\(path).\(key)") }
        return PolicyTargetReference(
            group: values["group"] ?? "", kind: values["kind"] ?? "", name: values["name"] ?? "",
            namespace: values["namespace"])
    }
}

/// How many single-character edits turn one short text into another (Levenshtein), for "did you
/// mean" hints: exact up to 8; texts whose lengths differ by more get that difference.
public enum EditDistance {
    public static func between(_ a: String, _ b: String) -> Int {
        ResourceDecoder.editDistance(a, b)
    }
}
