import Yams

/// Decodes the spec of a PeerAuthentication.
struct PeerAuthenticationDecoder {
    let context: DecodeContext

    func decode(_ spec: Node?, metadata: ResourceMetadata, location: SourceLocation) -> PeerAuthentication? {
        var selector: WorkloadSelector?
        var mode = MTLSMode.unset
        var ports: [Int: MTLSMode]?
        if let spec {
            let allowed: Set<String> = ["selector", "mtls", "portLevelMtls"]
            for (key, value) in context.mapping(spec, "spec", allowed: allowed, what: "PeerAuthentication spec") ?? []
            where !DecodeContext.isNull(value) {
                let path = "spec.\(key)"
                switch key {
                case "selector": selector = context.selector(value, path)
                case "mtls": mode = self.mode(value, path)
                case "portLevelMtls":
                    var map: [Int: MTLSMode] = [:]
                    var spellings: [Int: String] = [:]
                    let entries = context.mapping(value, path, allowed: nil, what: "portLevelMtls") ?? []
                    // Each entry's key line, in order (the mapping keeps every scalar key): a port's
                    // problem is reported at its key, not at its value's line.
                    let keyLines = (value.mapping.map(Array.init) ?? []).compactMap { pair -> Int? in
                        guard case .scalar = pair.key else { return nil }
                        return DecodeContext.line(of: pair.key)
                    }
                    for (index, (portText, modeNode)) in entries.enumerated() {
                        let portPath = "\(path).\(portText)"
                        let keyLine = index < keyLines.count ? keyLines[index] : DecodeContext.line(of: modeNode)
                        // Istio reads the key as an unsigned decimal (proto JSON's map key, the schema's
                        // `int(key)`): digits only, leading zeros allowed.
                        guard let port = Int(portText), portText.utf8.allSatisfy({ (48...57).contains($0) }) else {
                            context.report(
                                .badPort, portPath, line: keyLine, "port key \"\(portText)\" is not a number",
                                fix: "key portLevelMtls by the workload's port number, such as 8080")
                            continue
                        }
                        if portText.count > 1 && portText.first == "0" {
                            context.report(
                                .paddedPortKey, portPath, line: keyLine,
                                "port key \"\(portText)\" has a leading zero; Istio reads it as port \(port)",
                                fix: "write the port as \(port)")
                        }
                        if let earlier = spellings[port] {
                            let how = earlier == portText ? "as a number and as text" : "as \"\(earlier)\" and \"\(portText)\""
                            context.report(
                                .duplicatePort, portPath, line: keyLine,
                                "port \(port) is listed twice in portLevelMtls (\(how)); only one of the two can be in force, with no defined winner",
                                fix: "keep one entry for port \(port)")
                        }
                        spellings[port] = portText
                        map[port] = self.mode(modeNode, portPath)
                    }
                    // Entries whose port key was refused are reported above; they are not "no port".
                    ports = map.isEmpty && !entries.isEmpty ? nil : map
                default: break
                }
            }
        }
        return PeerAuthentication(
            metadata: metadata, location: location, selector: selector, mode: mode, portLevelMTLS: ports)
    }

    private func mode(_ node: Node, _ path: String) -> MTLSMode {
        var mode = MTLSMode.unset
        for (key, value) in context.mapping(node, path, allowed: ["mode"], what: "an mTLS setting") ?? []
        where !DecodeContext.isNull(value) {
            let modePath = "\(path).\(key)"
            guard let raw = context.string(value, modePath) else { continue }
            guard let parsed = MTLSMode(rawValue: raw) else {
                context.report(
                    .badEnum, modePath, value, "unknown mTLS mode \"\(raw)\"; expected UNSET, DISABLE, PERMISSIVE or STRICT",
                    fix: "use one of UNSET, DISABLE, PERMISSIVE, STRICT")
                continue
            }
            mode = parsed
        }
        return mode
    }
}
