import Foundation
import RampartIdentity

/// Checks shared by the three kinds: metadata, selectors, target references, IPs, ports, wildcards.
enum CommonChecks {
    static func metadata(_ metadata: ResourceMetadata, _ reporter: inout Reporter) {
        if metadata.name.isEmpty {
            reporter.add(.badMetadata, "metadata.name", "the resource has no name", fix: "set metadata.name")
        } else if !isDNSSubdomain(metadata.name) {
            reporter.add(
                .badMetadata, "metadata.name",
                "name \"\(metadata.name)\" is not a DNS-1123 subdomain (at most 253 ASCII lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)",
                fix: suggestedName(metadata.name).map { "rename the resource, for example \($0)" }
                    ?? "rename the resource with lower-case letters, digits, '-' and '.'")
        }
        // The API server refuses labels and annotations whose keys are not qualified names
        // (`[prefix/]name`), label values that are not label values, and more than 256 KiB of
        // annotations; kubectl apply fails before Istio sees the resource.
        for (key, value) in metadata.labels.sorted(by: { $0.key < $1.key }) {
            if let problem = labelKeyProblem(key) {
                reporter.add(
                    .badMetadata, "metadata.labels.\(key)", "label key \"\(key)\" \(problem); Kubernetes refuses it",
                    fix: "use a key such as app or example.com/tier: an optional DNS subdomain and /, then a name of at most 63 letters, digits, '-', '_' and '.'")
            } else if !isLabelValue(value) {
                reporter.add(
                    .badMetadata, "metadata.labels.\(key)",
                    "label value \"\(value)\" is not a Kubernetes label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit); Kubernetes refuses it",
                    fix: "shorten the value or replace the other characters, or move the text to an annotation")
            }
        }
        for key in metadata.annotations.keys.sorted() {
            // Kubernetes checks annotation keys in lower case: upper-case prefixes pass.
            if let problem = labelKeyProblem(key.lowercased()) {
                reporter.add(
                    .badMetadata, "metadata.annotations.\(key)", "annotation key \"\(key)\" \(problem); Kubernetes refuses it",
                    fix: "use a key such as example.com/owner: an optional DNS subdomain and /, then a name of at most 63 letters, digits, '-', '_' and '.'")
            }
        }
        let annotationBytes = metadata.annotations.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        if annotationBytes > 256 * 1024 {
            reporter.add(
                .badMetadata, "metadata.annotations",
                "the annotations hold \(annotationBytes) bytes; Kubernetes allows at most 262144 (256 KiB) in all",
                fix: "keep large data out of annotations, in a ConfigMap or the policy itself")
        }
        // Istio's webhook refuses its internal annotations on resources users write.
        for key in ["internal.istio.io/webhook-always-reject", "internal.istio.io/parents", "internal.istio.io/parent-namespace"]
        where metadata.annotations[key] != nil {
            reporter.add(
                .badMetadata, "metadata.annotations.\(key)", "the annotation \(key) is Istio's own and may not be set on a resource",
                fix: "remove the annotation")
        }
        if !isDNSLabel(metadata.namespace) {
            reporter.add(
                .badMetadata, "metadata.namespace",
                "namespace \"\(metadata.namespace)\" is not a DNS-1123 label (at most 63 ASCII lower-case letters, digits and '-', starting and ending with a letter or digit)",
                fix: "use a namespace of lower-case letters, digits and '-'")
        }
    }

    /// A DNS-1123 subdomain close to `name`: lower-cased, every other character a `-`, without
    /// leading or trailing `-` or `.`; `nil` when nothing valid is left.
    static func suggestedName(_ name: String) -> String? {
        let mapped = String(
            name.lowercased().map { character -> Character in
                character.isASCII && (character.isLetter || character.isNumber || character == ".") ? character : "-"
            })
        let trimmed = mapped.trimmingCharacters(in: CharacterSet(charactersIn: "-."))
        let candidate = String(trimmed.prefix(253)).trimmingCharacters(in: CharacterSet(charactersIn: "-."))
        return isDNSSubdomain(candidate) ? candidate : nil
    }

    static func selector(_ selector: WorkloadSelector?, _ path: String, _ reporter: inout Reporter) {
        guard let selector else { return }
        if selector.matchLabels.isEmpty {
            reporter.add(
                .emptySelector, path,
                "the selector has no labels, so it selects every workload in the namespace (in the root namespace, every workload of the mesh)",
                fix: "add matchLabels, or remove the selector to make the namespace-wide (or mesh-wide) intent explicit")
        }
        if selector.matchLabels.count > 4096 {
            reporter.add(
                .overLimit, "\(path).matchLabels", "the selector has \(selector.matchLabels.count) labels; Istio's schema allows at most 4096",
                fix: "select by the few labels that identify the workloads, such as app")
        }
        for (key, value) in selector.matchLabels.sorted(by: { $0.key < $1.key }) {
            let field = "\(path).matchLabels"
            if key.isEmpty {
                reporter.add(
                    .badSelector, field, "a label key is empty (value \"\(value)\")",
                    fix: "give every matchLabels entry a key such as app")
            } else if key.contains("*") || value.contains("*") {
                reporter.add(
                    .badSelector, "\(field).\(key)", "wildcards are not supported in selector labels (\(key)=\(value))",
                    fix: "list the exact label value")
            } else if value.unicodeScalars.count > 63 {
                // Istio's schema limits label values to 63 characters, as Kubernetes does.
                reporter.add(
                    .badSelector, "\(field).\(key)",
                    "label value \"\(value)\" is \(value.unicodeScalars.count) characters long; Istio's schema allows at most 63",
                    fix: "use the label value the workload carries (Kubernetes label values have at most 63 characters)")
            } else if let problem = labelKeyProblem(key) {
                // Istio accepts any other key, but no workload can carry it.
                reporter.add(
                    .unusualLabel, "\(field).\(key)",
                    "label key \"\(key)\" \(problem), so no Kubernetes workload carries it and the selector selects nothing",
                    fix: "use a Kubernetes label key: an optional DNS prefix and /, then a name of at most 63 characters")
            } else if !isLabelValue(value) {
                reporter.add(
                    .unusualLabel, "\(field).\(key)",
                    "label value \"\(value)\" is not a Kubernetes label value (letters, digits, '-', '_' and '.', starting and ending with a letter or digit), so no workload carries it and the selector selects nothing",
                    fix: "use the label value the workload carries")
            }
        }
    }

    /// Whether `text` is a Kubernetes label value (empty, or at most 63 characters of letters,
    /// digits, `-`, `_` and `.` that start and end with a letter or digit).
    static func isLabelValue(_ text: String) -> Bool {
        text.isEmpty || text.utf8.count <= 63 && isLabelName(text)
    }

    /// What is wrong with a label key (`[prefix/]name`), or nil.
    static func labelKeyProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts.last ?? "")
        if parts.count == 2 {
            let prefix = String(parts[0])
            guard isDNSSubdomain(prefix) else { return "has a prefix that is not a DNS subdomain" }
        }
        guard !name.isEmpty, name.utf8.count <= 63, isLabelName(name) else {
            return "has a name that is not at most 63 letters, digits, '-', '_' and '.' starting and ending with a letter or digit"
        }
        return nil
    }

    private static func isLabelName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        func alphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        guard let first = bytes.first, let last = bytes.last, alphanumeric(first), alphanumeric(last) else { return false }
        return bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    static func targets(
        selector: WorkloadSelector?, targetRef: PolicyTargetReference?, targetRefs: [PolicyTargetReference],
        targetRefsWritten: Bool, _ reporter: inout Reporter
    ) {
        // Istio's schema counts a field as set when it is written, an empty list included.
        let empty = targetRefsWritten && targetRefs.isEmpty ? " (targetRefs: [] counts as set; remove the key)" : ""
        if selector != nil && (targetRef != nil || targetRefsWritten) {
            reporter.add(
                .badTargetRef, "spec.selector", "selector and targetRef/targetRefs are both set; only one may be\(empty)",
                fix: "keep either the selector or the target references")
        }
        if targetRefs.count > 16 {
            reporter.add(
                .overLimit, "spec.targetRefs", "targetRefs lists \(targetRefs.count) references; Istio's schema allows at most 16",
                fix: "split the references over several policies")
        }
        if targetRef != nil && targetRefsWritten {
            reporter.add(
                .badTargetRef, "spec.targetRefs", "targetRef and targetRefs are both set; only one may be\(empty)",
                fix: "move the single targetRef into targetRefs")
        }
        let all = (targetRef.map { [("spec.targetRef", $0)] } ?? [])
            + targetRefs.enumerated().map { ("spec.targetRefs[\($0.offset)]", $0.element) }
        // A Service's group is the core group, written empty or as "core".
        let allowed = [("", "Service"), ("core", "Service"), ("networking.istio.io", "ServiceEntry"),
                       ("gateway.networking.k8s.io", "Gateway"), ("gateway.networking.k8s.io", "GatewayClass")]
        for (path, ref) in all {
            if let namespace = ref.namespace, !namespace.isEmpty {
                reporter.add(
                    .badTargetRef, "\(path).namespace",
                    "targetRef namespace \"\(namespace)\" is set; references may not cross namespaces",
                    fix: "remove the namespace field; the policy's own namespace is used")
            }
            if !allowed.contains(where: { $0.0 == ref.group && $0.1 == ref.kind }) {
                let groups = allowed.filter { $0.1 == ref.kind }.map(\.0)
                let caseFolded = allowed.first { $0.1.lowercased() == ref.kind.lowercased() }?.1
                if ref.kind.isEmpty {
                    reporter.add(
                        .badTargetRef, "\(path).kind", "the target reference has no kind",
                        fix: "set kind: Gateway (group gateway.networking.k8s.io), Service (group \"\"), ServiceEntry (group networking.istio.io) or GatewayClass")
                } else if let group = groups.first {
                    // A known kind with another group is the group's fault.
                    reporter.add(
                        .badTargetRef, "\(path).group",
                        "a \(ref.kind) reference has group \"\(ref.group)\"; \(ref.kind) is in group \"\(group)\"",
                        fix: "set group: \"\(group)\"")
                } else if let kind = caseFolded {
                    reporter.add(
                        .badTargetRef, "\(path).kind", "kind \"\(ref.kind)\" is not a kind Istio attaches to; kinds are case-sensitive",
                        fix: "write kind: \(kind)")
                } else {
                    reporter.add(
                        .badTargetRef, "\(path).kind",
                        "target \(ref.group.isEmpty ? "" : ref.group + "/")\(ref.kind) is not attachable; expected Service, networking.istio.io ServiceEntry, or gateway.networking.k8s.io Gateway or GatewayClass",
                        fix: "point the reference at a Gateway, GatewayClass, Service or ServiceEntry")
                }
            }
            if ref.name.isEmpty {
                reporter.add(.badTargetRef, "\(path).name", "the target reference has no name", fix: "set name")
            } else if ref.name.unicodeScalars.count > 253 {
                reporter.add(
                    .overLimit, "\(path).name", "the target's name is \(ref.name.unicodeScalars.count) characters long; Istio's schema allows at most 253",
                    fix: "name the \(ref.kind.isEmpty ? "target" : ref.kind) as it is named in its metadata (Kubernetes names have at most 253 characters)")
            }
            // Attachable, but not to anything Rampart runs: a Gateway's pods are found by the label
            // Istio gives them; a Service, ServiceEntry or GatewayClass reference attaches the policy
            // to a waypoint or to every gateway of a class, neither of which a companion proxy is.
            let attached = ref.group == "gateway.networking.k8s.io" && ref.kind == "Gateway"
            if !attached, allowed.contains(where: { $0.0 == ref.group && $0.1 == ref.kind }) {
                reporter.add(
                    .targetNotEnforced, path,
                    "a \(ref.kind) target attaches the policy to \(ref.kind == "GatewayClass" ? "the gateways of that class" : "the \(ref.kind)'s waypoint (ambient mode)"), which Rampart does not run: the policy applies to no workload",
                    fix: "select the workloads with spec.selector.matchLabels instead (for a Service, the labels of its pods)")
            }
        }
    }

    /// Checks an `ipBlocks`-style value as Istio's webhook reads it (Go's netip): an address or a
    /// block is sound, and so is an IPv6 address with a zone (`fe80::1%eth0`), which matches as
    /// the address alone (see `IPBlock`); anything else is refused.
    static func ipValue(_ value: String, field: String, attribute: String? = nil, _ reporter: inout Reporter) {
        guard !value.isEmpty, IPBlock(value) == nil else { return }
        reporter.add(
            .badIP, field, "\"\(value)\" is not an IP address or CIDR block\(attribute.map { " for \($0)" } ?? "")",
            fix: "write an address like 10.0.0.1 or a block like 10.0.0.0/16 (a prefix length without a leading zero)")
    }

    static func isValidPort(_ text: String) -> Bool {
        guard let port = Int(text), text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return false
        }
        return (0...65535).contains(port)
    }

    /// The principals (`principals`, `notPrincipals`, `source.principal`) Istio reads as regular
    /// expressions: a value with a leading `*` whose rest holds a regex operator other than `.`
    /// becomes `spiffe://.*<rest>`, unescaped. One RE2 refuses is an error, as Envoy refuses the
    /// policy (RP032); one it compiles is a warning, since its `*` no longer means "any text"
    /// (RP082). Returns the positions reported, which need no RP062 warning besides.
    @discardableResult
    static func principalRegexes(_ values: [String], field: String, _ reporter: inout Reporter) -> Set<Int> {
        var reported: Set<Int> = []
        for (position, value) in values.enumerated() where value.count > 1 && value.hasPrefix("*") {
            let suffix = String(value.dropFirst())
            guard PatternRegex.hasOperators(suffix) else { continue }
            reported.insert(position)
            let star = suffix.contains("*") ? ": a * there repeats the character before it rather than standing for any text" : ""
            reportRegex(
                "principal \"\(value)\"", placed: "what follows the leading *", expression: PatternRegex.expression(suffix: suffix),
                display: "spiffe://.*\(suffix)", operators: operatorsText(suffix), note: star, at: "\(field)[\(position)]",
                refusedFix: "remove the regex characters: a principal holds letters, digits, '.', '-', '_' and '/', with one leading or trailing *",
                warnedFix: "write one leading or trailing * only (*/sa/name, cluster.local/ns/name/*), or name the callers by namespaces or serviceAccounts",
                &reporter)
        }
        return reported
    }

    /// The `namespaces` values (and `source.namespace` condition values) Istio reads as regular
    /// expressions beyond their `*`s: `.*/ns/<value>/.*` with each `*` as `.*` and the rest
    /// unescaped, so a `.` or another operator in the value is an operator. One RE2 refuses is an
    /// error (RP032); one it compiles is a warning (RP082), since a namespace name has none of them.
    static func namespaceRegexes(_ values: [String], field: String, _ reporter: inout Reporter) {
        for (position, value) in values.enumerated() where PatternRegex.hasNamespaceOperators(value) {
            let expression = PatternRegex.expression(namespace: value)
            let dot = value.contains(".") ? ": a . there stands for any one character" : ""
            reportRegex(
                "namespace \"\(value)\"", placed: "it", expression: expression, display: expression,
                operators: operatorsText(value.replacingOccurrences(of: "*", with: ""), dot: true),
                note: dot + "; a namespace name holds none of them", at: "\(field)[\(position)]",
                refusedFix: "write namespace names, each with * for any text where needed (team-*, *-prod)",
                warnedFix: "write namespace names, with * for any text (team-* rather than team.*)", &reporter)
        }
    }

    /// Reports a value Istio puts into a regular expression: an error (RP032) when RE2 refuses
    /// `expression`, else a warning (RP082) naming its operators.
    private static func reportRegex(
        _ subject: String, placed: String, expression: String, display: String, operators: (text: String, count: Int),
        note: String, at field: String, refusedFix: String, warnedFix: String, _ reporter: inout Reporter
    ) {
        if let problem = PatternRegex.problem(expression) {
            reporter.add(
                .badPrincipalRegex, field,
                "\(subject): Istio puts \(placed) into the regular expression \(display), and \(problem), so the proxy refuses the policy",
                fix: refusedFix)
        } else {
            reporter.add(
                .principalRegex, field,
                "\(subject): Istio puts \(placed) into the regular expression \(display) unescaped, where \(operators.text) \(operators.count == 1 ? "is an operator" : "are operators")\(note)",
                fix: warnedFix)
        }
    }

    /// The regex operators of a suffix, each once, quoted, and how many there are.
    private static func operatorsText(_ suffix: String, dot: Bool = false) -> (text: String, count: Int) {
        var seen: [Character] = []
        for character in suffix where !seen.contains(character) {
            if let byte = character.utf8.first, character.utf8.count == 1,
                PatternRegex.operators.contains(byte) || (dot && byte == UInt8(ascii: "."))
            {
                seen.append(character)
            }
        }
        return (seen.map { "'\($0)'" }.joined(separator: ", "), seen.count)
    }

    /// Whether `*` appears anywhere but as the first or last character.
    static func hasInnerWildcard(_ value: String) -> Bool {
        guard value.count > 2 else { return false }
        return value.dropFirst().dropLast().contains("*")
    }

    /// Whether `principal` is `<td>/ns/<ns>/sa/<sa>` whose only `*` leads or ends its trust domain
    /// (`cl*/ns/a/sa/b`): the pattern is read against the mesh's trust domains.
    static func hasTrustDomainPattern(_ principal: String) -> Bool {
        let parts = principal.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[1...].allSatisfy({ !$0.contains("*") }) else { return false }
        let domain = parts[0]
        return domain.count > 1 && domain.filter { $0 == "*" }.count == 1 && (domain.hasPrefix("*") || domain.hasSuffix("*"))
    }

    static func isDNSLabel(_ text: String) -> Bool { DNSName.isLabel(text) }

    static func isDNSSubdomain(_ text: String) -> Bool { DNSName.isSubdomain(text) }

    /// Istio's strict header names (`ValidateStrictHTTPHeaderName`): ASCII letters, digits and `-`.
    static func isStrictHeaderName(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { ($0.isLetter || $0.isNumber) && $0.isASCII || $0 == "-" }
    }

    static func isHeaderName(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { ($0.isLetter || $0.isNumber) && $0.isASCII || $0 == "-" || $0 == "_" }
    }

    /// The longest service account value, and the most values a field may list (Istio's limits).
    static let serviceAccountLimit = 320
    static let serviceAccountValueLimit = 16

    /// Istio's rules for service accounts, in `serviceAccounts`, `notServiceAccounts` and
    /// `source.serviceAccount` conditions alike: each `name` (in the policy's namespace) or
    /// `namespace/name`, no wildcard, at most 320 characters, at most 16 in one list.
    static func serviceAccounts(_ values: [String], field: String, _ reporter: inout Reporter) {
        if values.count > serviceAccountValueLimit {
            reporter.add(
                .badServiceAccount, field,
                "\(values.count) service accounts are listed; at most \(serviceAccountValueLimit) are allowed",
                fix: "split the rule, or name the callers by namespaces or principals")
        }
        for (position, value) in values.enumerated() where !value.isEmpty {
            if value.contains("*") {
                reporter.add(
                    .badServiceAccount, "\(field)[\(position)]", "service account \"\(value)\" contains a wildcard, which is not allowed",
                    fix: "list each service account as name or namespace/name, or use principals with a wildcard")
                continue
            }
            let parts = value.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count > 2 || parts.contains(where: \.isEmpty) {
                reporter.add(
                    .badServiceAccount, "\(field)[\(position)]", "service account \"\(value)\" is neither name nor namespace/name",
                    fix: "write it as <service-account> (the policy's namespace) or <namespace>/<service-account>, e.g. default/productpage")
            } else if value.utf8.count > serviceAccountLimit {
                reporter.add(
                    .badServiceAccount, "\(field)[\(position)]",
                    "service account \"\(value.prefix(40))...\" is \(value.utf8.count) characters long; at most \(serviceAccountLimit) are allowed",
                    fix: "shorten it to a real namespace/name pair")
            } else if PatternRegex.hasOperators(value) {
                // Istio puts both parts into its regex unescaped (generator.go's serviceAccountRegex).
                let qualified = parts.count == 2 ? value : "<policy namespace>/\(value)"
                reportRegex(
                    "service account \"\(value)\"", placed: "it",
                    expression: PatternRegex.expression(account: parts.count == 2 ? value : "ns/\(value)"),
                    display: PatternRegex.expression(account: qualified), operators: operatorsText(value),
                    note: "; a service account name holds none of them", at: "\(field)[\(position)]",
                    refusedFix: "write the service account's name: letters, digits, '-' and '.'",
                    warnedFix: "write the service account's name: letters, digits, '-' and '.'", &reporter)
            }
        }
    }
}
