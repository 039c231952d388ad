import Yams

/// Decodes the spec of a RequestAuthentication.
struct RequestAuthenticationDecoder {
    let context: DecodeContext

    func decode(_ spec: Node?, metadata: ResourceMetadata, location: SourceLocation) -> RequestAuthentication? {
        var selector: WorkloadSelector?
        var targetRef: PolicyTargetReference?
        var targetRefs: [PolicyTargetReference] = []
        var targetRefsWritten = false
        var rules: [JWTRule] = []
        if let spec {
            let allowed: Set<String> = ["selector", "targetRef", "targetRefs", "jwtRules"]
            for (key, value) in context.mapping(spec, "spec", allowed: allowed, what: "RequestAuthentication spec") ?? []
            where !DecodeContext.isNull(value) {
                let path = "spec.\(key)"
                switch key {
                case "selector": selector = context.selector(value, path)
                case "targetRef": targetRef = context.targetRef(value, path)
                case "targetRefs":
                    targetRefsWritten = true
                    targetRefs = (context.list(value, path) ?? []).compactMap { context.targetRef($0.node, $0.path) }
                case "jwtRules":
                    rules = (context.list(value, path) ?? []).map { jwtRule($0.node, $0.path) }
                default: break
                }
            }
        }
        return RequestAuthentication(
            metadata: metadata, location: location, selector: selector, targetRef: targetRef, targetRefs: targetRefs,
            targetRefsWritten: targetRefsWritten,
            jwtRules: rules)
    }

    private static let ruleFields: Set<String> = [
        "issuer", "audiences", "jwksUri", "jwks_uri", "jwks", "fromHeaders", "fromParams", "fromCookies", "outputPayloadToHeader",
        "forwardOriginalToken", "outputClaimToHeaders", "timeout", "spaceDelimitedClaims", "presence",
        "failedStatusInMetadata",
    ]

    private func jwtRule(_ node: Node, _ path: String) -> JWTRule {
        var issuer = "", jwksURI = "", jwks = "", payloadHeader = ""
        var audiences: [String] = [], params: [String] = [], cookies: [String] = [], spaceDelimited: [String] = []
        var headers: [JWTRule.HeaderLocation] = []
        var claimHeaders: [JWTRule.ClaimToHeader] = []
        var forward = false
        var timeout: Double?
        var presence: JWTRule.Presence?
        var failedStatus = false
        var emptyJWKS: Node?, uriWritten = false
        for (key, value) in context.mapping(node, path, allowed: Self.ruleFields, what: "a JWT rule") ?? []
        where !DecodeContext.isNull(value) {
            let fieldPath = "\(path).\(key)"
            switch key {
            case "issuer":
                let text = context.string(value, fieldPath)
                issuer = text ?? ""
                // Istio's schema gives `issuer` a minimum length of one: the API server refuses an
                // empty string even where the webhook would accept a rule with only `jwksUri`.
                if text?.isEmpty == true {
                    context.report(
                        .badJWTRule, fieldPath, value, "issuer is an empty string",
                        fix: "give the token issuer (the tokens' iss claim), or remove the field to accept any issuer the keys verify")
                }
            case "audiences": audiences = context.stringList(value, fieldPath) ?? []
            case "jwksUri", "jwks_uri":
                // Istio's CRD accepts `jwks_uri` as another name of `jwksUri`; giving both is ambiguous.
                if !jwksURI.isEmpty {
                    context.report(
                        .badJWTRule, fieldPath, value, "jwksUri and jwks_uri are one field, given twice",
                        fix: "keep one of jwksUri and jwks_uri")
                }
                let text = context.string(value, fieldPath)
                jwksURI = text ?? ""
                uriWritten = true
                // Istio's schema gives jwksUri a minimum length of one: an empty string is refused,
                // not read as no URI.
                if text?.isEmpty == true {
                    context.report(
                        .badJWTRule, fieldPath, value, "\(key) is an empty string",
                        fix: "give the URL of the issuer's JWKS, or remove the field to use OIDC discovery or inline jwks")
                }
            case "jwks":
                let text = context.string(value, fieldPath)
                jwks = text ?? ""
                if text?.isEmpty == true { emptyJWKS = value }
            case "fromParams": params = context.stringList(value, fieldPath) ?? []
            case "fromCookies": cookies = context.stringList(value, fieldPath) ?? []
            case "spaceDelimitedClaims": spaceDelimited = context.stringList(value, fieldPath) ?? []
            case "outputPayloadToHeader": payloadHeader = context.string(value, fieldPath) ?? ""
            case "forwardOriginalToken": forward = context.bool(value, fieldPath) ?? false
            case "fromHeaders":
                headers = (context.list(value, fieldPath) ?? []).map { item in
                    let pairs = pairs(item.node, item.path, allowed: ["name", "prefix"], what: "a token header")
                    return JWTRule.HeaderLocation(name: pairs["name"] ?? "", prefix: pairs["prefix"] ?? "")
                }
            case "outputClaimToHeaders":
                claimHeaders = (context.list(value, fieldPath) ?? []).map { item in
                    let pairs = pairs(item.node, item.path, allowed: ["header", "claim"], what: "a claim-to-header entry")
                    return JWTRule.ClaimToHeader(header: pairs["header"] ?? "", claim: pairs["claim"] ?? "")
                }
            case "timeout":
                guard let text = context.string(value, fieldPath) else { continue }
                guard let parsed = GoDuration.milliseconds(text) else {
                    let negative = text.hasPrefix("-") && GoDuration.milliseconds(String(text.dropFirst())) != nil
                    context.report(
                        .badDuration, fieldPath, value,
                        negative ? "\"\(text)\" is negative; a timeout must be at least 1ms" : "\"\(text)\" is not a duration",
                        fix: "write a duration such as 500ms, 5s or 1m")
                    continue
                }
                guard parsed <= GoDuration.maximumMilliseconds else {
                    context.report(
                        .badDuration, fieldPath, value, "\"\(text)\" is longer than a duration can be (about 2562047h)",
                        fix: "write a duration such as 500ms, 5s or 1m")
                    continue
                }
                timeout = parsed
            case "presence":
                guard let text = context.string(value, fieldPath) else { continue }
                presence = JWTRule.Presence(rawValue: text)
                if presence == nil {
                    context.report(
                        .badEnum, fieldPath, value, "unknown presence \"\(text)\"; expected OPTIONAL, REQUIRED or IGNORED",
                        fix: "use OPTIONAL, REQUIRED or IGNORED")
                }
            case "failedStatusInMetadata": failedStatus = context.bool(value, fieldPath) ?? false
            default: break
            }
        }
        // Istio's schema allows one of jwks and jwksUri, counting a field as set when it is written at
        // all: `jwks: ""` beside a jwksUri is refused, though it holds no keys. (Both written with
        // content is the validator's finding.)
        if let emptyJWKS, uriWritten {
            context.report(
                .badJWTRule, "\(path).jwks", emptyJWKS,
                "jwks is written (as an empty string) beside jwksUri; Istio's schema counts a written field as set and accepts only one of them",
                fix: "remove the empty jwks field")
        }
        return JWTRule(
            issuer: issuer, audiences: audiences, jwksURI: jwksURI, jwks: jwks, fromHeaders: headers,
            fromParams: params, fromCookies: cookies, outputPayloadToHeader: payloadHeader, forwardOriginalToken: forward,
            outputClaimToHeaders: claimHeaders, timeoutMilliseconds: timeout, spaceDelimitedClaims: spaceDelimited,
            presence: presence, failedStatusInMetadata: failedStatus)
    }

    private func pairs(_ node: Node, _ path: String, allowed: Set<String>, what: String) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in context.mapping(node, path, allowed: allowed, what: what) ?? []
        where !DecodeContext.isNull(value) {
            result[key] = context.string(value, "\(path).\(key)")
        }
        return result
    }
}
