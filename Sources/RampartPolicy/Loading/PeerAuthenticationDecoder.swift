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
                    // Each entry's key as written, with its line, in the order `mapping` keeps them (a
                    // scalar key kubectl can send): a port's problem is reported at its key.
                    let writtenKeys = (value.mapping.map(Array.init) ?? []).compactMap { pair -> (text: String, plain: Bool, line: Int)? in
                        guard case .scalar(let scalar) = pair.key, case .key = KubernetesScalars.jsonKey(of: pair.key) else { return nil }
                        return (scalar.string, scalar.style == .plain, DecodeContext.line(of: pair.key))
                    }
                    for (index, (portText, modeNode)) in entries.enumerated() {
                        let portPath = "\(path).\(portText)"
                        let written = index < writtenKeys.count ? writtenKeys[index] : nil
                        let keyLine = written?.line ?? DecodeContext.line(of: modeNode)
                        // Istio's webhook reads the key as a JSON number (the legacy jsonpb decoder
                        // Istio keeps), after the schema's `int(key)`: decimal digits, no leading zero.
                        guard let port = Int(portText), portText.utf8.allSatisfy({ (48...57).contains($0) }) else {
                            let signed = Int(portText) != nil
                            context.report(
                                .badPort, portPath, line: keyLine,
                                signed
                                    ? "port key \"\(portText)\" is not a port: ports run from 1 to 65535, written without a sign"
                                    : "port key \"\(portText)\" is not a number",
                                fix: "key portLevelMtls by the workload's port number, such as 8080")
                            continue
                        }
                        if portText.count > 1 && portText.first == "0" {
                            context.report(
                                .badPort, portPath, line: keyLine,
                                "port key \"\(portText)\" has a leading zero; Istio's webhook reads port keys as JSON numbers, which cannot start with 0, and refuses the resource",
                                fix: "write the port as \(port)")
                            continue
                        }
                        if let written, written.plain, written.text != portText {
                            context.report(
                                .paddedPortKey, portPath, line: keyLine,
                                "port key \(written.text) is an unquoted YAML 1.1 number, which kubectl sends as port \(port)",
                                fix: "write the port in decimal digits, as \(port)")
                        }
                        let spelling = written?.text ?? portText
                        if let earlier = spellings[port] {
                            let how = earlier == spelling ? "as a number and as text" : "as \(earlier) and \(spelling)"
                            context.report(
                                .duplicatePort, portPath, line: keyLine,
                                "port \(port) is listed twice in portLevelMtls (\(how)); only one of the two can be in force, with no defined winner",
                                fix: "keep one entry for port \(port)")
                        }
                        spellings[port] = spelling
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
