import Foundation

/// Validates a RequestAuthentication the way Istio's admission webhook does.
enum RequestAuthenticationValidator {
    static func validate(_ policy: RequestAuthentication) -> [Diagnostic] {
        var reporter = Reporter(resource: policy.id, location: policy.location)
        CommonChecks.metadata(policy.metadata, &reporter)
        CommonChecks.selector(policy.selector, "spec.selector", &reporter)
        CommonChecks.targets(
            selector: policy.selector, targetRef: policy.targetRef, targetRefs: policy.targetRefs,
            targetRefsWritten: policy.targetRefsWritten, &reporter)
        if policy.metadata.annotations[ResourceMetadata.dryRunAnnotation] != nil {
            reporter.add(
                .badDryRun, "metadata.annotations.\(ResourceMetadata.dryRunAnnotation)",
                "RequestAuthentication does not support dry run", fix: "remove the istio.io/dry-run annotation")
        }
        if policy.jwtRules.count > 4096 {
            reporter.add(
                .overLimit, "spec.jwtRules", "the resource has \(policy.jwtRules.count) JWT rules; Istio's schema allows at most 4096",
                fix: "split the rules over several RequestAuthentications")
        }
        for (index, rule) in policy.jwtRules.enumerated() {
            check(rule, path: "spec.jwtRules[\(index)]", &reporter)
        }
        return reporter.diagnostics
    }

    private static func check(_ rule: JWTRule, path: String, _ reporter: inout Reporter) {
        if rule.issuer.isEmpty && rule.jwksURI.isEmpty {
            reporter.add(
                .badJWTRule, path, "the JWT rule has neither issuer nor jwksUri",
                fix: "set issuer (and jwksUri or jwks) for the token issuer")
        }
        if rule.spaceDelimitedClaims.count > 64 {
            reporter.add(
                .overLimit, "\(path).spaceDelimitedClaims",
                "spaceDelimitedClaims lists \(rule.spaceDelimitedClaims.count) claims; Istio's schema allows at most 64",
                fix: "list only the claims whose values are space-separated strings")
        }
        for (offset, audience) in rule.audiences.enumerated() where audience.isEmpty {
            reporter.add(
                .emptyValue, "\(path).audiences[\(offset)]", "audience \(offset) is an empty string", fix: "remove the empty audience")
        }
        if !rule.jwksURI.isEmpty, let problem = JWKSURIRules.problem(rule.jwksURI) {
            reporter.add(
                .badJWTRule, "\(path).jwksUri", "jwksUri \"\(rule.jwksURI)\" \(problem)",
                fix: "write the full URL, e.g. https://issuer.example.com/.well-known/jwks.json")
        }
        if !rule.jwks.isEmpty { checkJWKS(rule.jwks, field: "\(path).jwks", &reporter) }
        if !rule.jwks.isEmpty && !rule.jwksURI.isEmpty {
            reporter.add(
                .badJWTRule, "\(path).jwks", "jwks and jwksUri are both set; Istio accepts only one of them",
                fix: "keep the inline jwks, or the jwksUri to fetch the keys from")
        }
        if rule.jwksURI.unicodeScalars.count > 2048 {
            reporter.add(
                .overLimit, "\(path).jwksUri", "jwksUri is \(rule.jwksURI.unicodeScalars.count) characters long; Istio's schema allows at most 2048",
                fix: "use a shorter URL for the key set")
        }
        for (offset, header) in rule.fromHeaders.enumerated() where header.name.isEmpty {
            reporter.add(
                .missingValue, "\(path).fromHeaders[\(offset)].name", "a token header has an empty name",
                fix: "name the header, e.g. {name: x-jwt-assertion, prefix: \"Bearer \"}")
        }
        for (name, values) in [
            ("fromParams", rule.fromParams), ("fromCookies", rule.fromCookies),
            ("spaceDelimitedClaims", rule.spaceDelimitedClaims),
        ] {
            for (offset, value) in values.enumerated() where value.isEmpty {
                reporter.add(
                    .emptyValue, "\(path).\(name)[\(offset)]", "entry \(offset) of \(name) is an empty name", fix: "remove the empty value")
            }
        }
        // Istio's webhook takes any name here; one that no request can carry is never sent.
        if !rule.outputPayloadToHeader.isEmpty && !AuthzRequest.isHeaderToken(rule.outputPayloadToHeader) {
            reporter.add(
                .unsendableHeader, "\(path).outputPayloadToHeader",
                "\"\(rule.outputPayloadToHeader)\" is not an HTTP header name, so the payload is never sent to the application",
                fix: "pick a header name such as x-jwt-payload (letters, digits, '-', and no spaces or ':')")
        }
        for (offset, mapping) in rule.outputClaimToHeaders.enumerated() {
            let field = "\(path).outputClaimToHeaders[\(offset)]"
            if !CommonChecks.isStrictHeaderName(mapping.header) {
                let underscore = mapping.header.contains("_") ? " ('_' included: Istio refuses it here)" : ""
                reporter.add(
                    .badHeaderName, "\(field).header",
                    "\"\(mapping.header)\" is not a header name Istio accepts for a claim: only ASCII letters, digits and '-'\(underscore)",
                    fix: "pick a header name such as x-jwt-sub")
            }
            if mapping.claim.isEmpty {
                reporter.add(.missingValue, "\(field).claim", "the claim name is empty", fix: "name the claim, e.g. sub")
            }
        }
        if let timeout = rule.timeoutMilliseconds {
            if timeout < 1 {
                reporter.add(
                    .badDuration, "\(path).timeout", "timeout must be at least 1ms", fix: "use a timeout such as 5s")
            } else if timeout.rounded() != timeout {
                // `GoDuration` keeps whole milliseconds exact, however long.
                reporter.add(
                    .badDuration, "\(path).timeout", "timeout \(timeout)ms is finer than a millisecond; only whole milliseconds are supported",
                    fix: "round the timeout to whole milliseconds: \(Int(timeout.rounded(.down)))ms or \(Int(timeout.rounded(.up)))ms")
            }
        }
    }

    private static func checkJWKS(_ text: String, field: String, _ reporter: inout Reporter) {
        let object = text.data(using: .utf8).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        if let object, object["keys"] == nil, object["kty"] is String {
            // Istio's webhook reads a lone key as a set of one; the proxy's JWT check reads only a
            // set, and finds no keys in it.
            reporter.add(
                .singleJWK, field,
                "jwks is a single key, not a key set: it is accepted, but the proxy's JWT check finds no keys in it, so every token fails with 401",
                fix: "wrap the key in a set: {\"keys\": [ ...the key... ]}")
            checkKeyMembers([object], field: field, &reporter)
            return
        }
        guard let object, let keys = object["keys"] as? [[String: Any]], keys.allSatisfy({ $0["kty"] is String }) else {
            reporter.add(
                .badJWKS, field, "jwks is not a JSON Web Key Set ({\"keys\": [{\"kty\": ...}, ...]})",
                fix: "paste the issuer's JWKS document, or use jwksUri")
            return
        }
        // Istio's webhook parses the set whole: one key of a type no JWK library knows refuses it.
        let known = ["EC", "RSA", "OKP", "oct"]
        for (index, key) in keys.enumerated() {
            guard let type = key["kty"] as? String, !known.contains(type) else { continue }
            reporter.add(
                .badJWKS, field, "key \(index) of the JWKS has kty \"\(DiagnosticText.escaped(type))\", which is not a key type (EC, RSA, OKP or oct)",
                fix: "remove that key, or correct its kty")
        }
        checkKeyMembers(keys, field: field, &reporter)
        let privateMembers = ["d", "p", "q", "dp", "dq", "qi"]
        for (index, key) in keys.enumerated() where privateMembers.contains(where: { key[$0] != nil }) {
            reporter.add(
                .privateJWKS, field, "key \(index) of the JWKS includes private key material",
                fix: "publish only the public members (n, e / x, y) of the key")
        }
    }

    /// The key members holding base64url numbers or bytes must be strings, as the JWK library of
    /// Istio's webhook reads them.
    private static func checkKeyMembers(_ keys: [[String: Any]], field: String, _ reporter: inout Reporter) {
        let encoded = ["n", "e", "x", "y", "k", "d", "p", "q", "dp", "dq", "qi"]
        for (index, key) in keys.enumerated() {
            for member in encoded where key[member] != nil && !(key[member] is String) {
                reporter.add(
                    .badJWKS, field, "key \(index) of the JWKS has a \(member) that is not a string",
                    fix: "write \(member) as base64url text, as the issuer publishes it")
            }
        }
    }
}
