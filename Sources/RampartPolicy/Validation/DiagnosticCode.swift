/// Rampart's own stable codes for policy findings; tests and tooling branch on these, never on wording.
public enum DiagnosticCode: String, Sendable, Hashable, CaseIterable {
    /// The file could not be read or is not YAML.
    case unreadable = "RP001"
    /// A document is not a mapping with apiVersion and kind.
    case notAResource = "RP002"
    /// The apiVersion/kind pair is not one Rampart's policy module reads.
    case unknownKind = "RP003"
    /// A field that the schema does not define.
    case unknownField = "RP004"
    /// A value of the wrong YAML type.
    case wrongType = "RP005"
    /// A required value is missing or empty.
    case missingValue = "RP006"
    /// A value outside its enumeration.
    case badEnum = "RP007"
    /// metadata.name or namespace is malformed.
    case badMetadata = "RP008"
    /// A `List` (or `AuthorizationPolicyList` and the like) without a list of items.
    case listWithoutItems = "RP009"
    /// A workload selector that is malformed.
    case badSelector = "RP010"
    /// A selector given without labels: it selects every workload.
    case emptySelector = "RP011"
    /// A targetRef/targetRefs problem.
    case badTargetRef = "RP012"
    /// A list or value longer than Istio's CRD schema allows (rules, targetRefs, jwksUri).
    case overLimit = "RP013"
    /// The action and provider do not fit together.
    case badAction = "RP020"
    /// A DENY or CUSTOM policy without rules.
    case missingRules = "RP021"
    /// A field the CUSTOM action cannot use.
    case unsupportedWithCustom = "RP022"
    /// The dry-run annotation is malformed or not allowed here.
    case badDryRun = "RP023"
    /// An empty from/to/source/operation.
    case emptyClause = "RP024"
    /// An empty string in a value list.
    case emptyValue = "RP025"
    /// An IP address or CIDR block that does not parse.
    case badIP = "RP026"
    /// A port that is not an integer in 0...65535 (1...65535 where stated).
    case badPort = "RP027"
    /// serviceAccounts combined with namespaces/principals, or a malformed service account.
    case badServiceAccount = "RP028"
    /// A `when` condition with a bad or unknown key, or no values.
    case badCondition = "RP029"
    /// A wildcard in the middle of a value.
    case badWildcard = "RP030"
    /// An unsupported path template.
    case badPathTemplate = "RP031"
    /// A `*`-prefixed principal whose rest Istio makes a regular expression RE2 cannot compile.
    case badPrincipalRegex = "RP032"
    /// A JWT rule with a missing issuer/JWKS or a bad JWKS URI.
    case badJWTRule = "RP040"
    /// A JWKS document that does not parse.
    case badJWKS = "RP041"
    /// A JWKS holding private key material.
    case privateJWKS = "RP042"
    /// A header name that is not a valid HTTP header token.
    case badHeaderName = "RP043"
    /// A duration that is malformed or too small.
    case badDuration = "RP044"
    /// Port-level mTLS on a policy without a selector, or an empty port map.
    case badPortLevelMTLS = "RP050"
    /// A DENY rule whose HTTP-only conditions make it deny all TCP traffic.
    case denyAllOnTCP = "RP060"
    /// A selector that matches none of the known workloads.
    case selectsNothing = "RP061"
    /// A wildcard in the middle of a value, which is matched literally.
    case literalWildcard = "RP062"
    /// Several mesh/namespace/workload PeerAuthentications compete; only one is used.
    case conflictingPeerAuthentication = "RP063"
    /// A policy with targetRefs that Rampart does not attach to sidecar workloads.
    case targetNotEnforced = "RP064"
    /// The same kind, namespace and name defined twice among the files given.
    case duplicateResource = "RP065"
    /// An mTLS-only field (principals, namespaces) where plaintext is accepted or peer identity is
    /// hidden: plaintext requests slip past a DENY, or through an ALLOW's not-field, or never match.
    case identityWithoutStrict = "RP066"
    /// A request principal or JWT claim condition where no RequestAuthentication of the files given
    /// can apply: requests have none, so the rule never matches as written.
    case noRequestAuthentication = "RP067"
    /// A value that can never match a request: a path without its leading /, a method in lower
    /// case, a principal written with spiffe://.
    case neverMatches = "RP068"
    /// A `namespaces` value naming a namespace where no known workload runs (with a workload list).
    case unknownNamespace = "RP069"
    /// `ipBlocks` or `source.ip` on an ingress gateway, where they see the load balancer's address.
    case ipBlocksAtGateway = "RP070"
    /// A PeerAuthentication with a workload selector in the root namespace, which Istio ignores.
    case rootPeerSelector = "RP071"
    /// A TCP port of a listed workload where ALLOW policies apply but no rule can match TCP.
    case tcpPortShut = "RP072"
    /// A port written twice in one portLevelMtls (`8080` and `"8080"`), which Kubernetes merges
    /// with no defined winner.
    case duplicatePort = "RP073"
    /// A selector label that Istio's schema accepts but no Kubernetes workload can carry (a key or
    /// value outside Kubernetes' label syntax): the selector selects nothing.
    case unusualLabel = "RP074"
    /// An `outputPayloadToHeader` that is not an HTTP header name: the webhook accepts it, and the
    /// payload is never sent.
    case unsendableHeader = "RP075"
    /// CUSTOM policies naming different ext-authz providers for the same workloads: Istio asks
    /// none of them and denies what their rules match.
    case customProviderConflict = "RP076"
    /// A RequestAuthentication no AuthorizationPolicy of the files given backs with a request
    /// principal requirement: a request without a token is let in.
    case tokenNotRequired = "RP077"
    /// A selector naming a Gateway API gateway's pods, where Istio asks for `targetRefs` to the
    /// Gateway instead (its analyzer's IST0166).
    case selectorOnGatewayPods = "RP078"
    /// An inline `jwks` holding one key rather than a set: the webhook accepts it, and the proxy's
    /// JWT check finds no keys in it.
    case singleJWK = "RP079"
    /// A `portLevelMtls` key written as an unquoted number other than plain decimal (`010`, `0x50`,
    /// `1e3`): kubectl sends the number it reads (port 8, 80, 1000), which may not be the port meant.
    case paddedPortKey = "RP080"
    /// A label, selector or annotation key written unquoted that kubectl sends as other text
    /// (`yes: a` as the label `true`, `010` as `8`).
    case convertedKey = "RP081"
    /// A `*`-prefixed principal whose rest holds regex operators, which Istio reads as such.
    case principalRegex = "RP082"

    /// The severity a finding with this code has unless stated otherwise.
    public var defaultSeverity: Diagnostic.Severity {
        switch self {
        case .emptySelector, .privateJWKS, .denyAllOnTCP, .selectsNothing, .literalWildcard,
            .conflictingPeerAuthentication, .targetNotEnforced, .identityWithoutStrict, .noRequestAuthentication,
            .neverMatches, .unknownNamespace, .ipBlocksAtGateway, .rootPeerSelector, .tcpPortShut, .duplicatePort,
            .unusualLabel, .unsendableHeader, .customProviderConflict, .tokenNotRequired, .selectorOnGatewayPods, .singleJWK,
            .paddedPortKey, .convertedKey, .principalRegex:
            return .warning
        default:
            return .error
        }
    }
}
