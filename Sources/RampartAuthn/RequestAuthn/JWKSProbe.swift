import Foundation
import RampartPolicy

/// Works out, for a check made without a proxy (`rampart authz check`), whether each JWKS URI
/// the RequestAuthentications name would give a proxy its keys, and how soon.
///
/// A proxy whose keys for an issuer never arrive refuses that issuer's tokens (401), even ones
/// that are correctly signed, and so does a check of an abstract token (`jwt: {valid: true}`)
/// whose provider's keys cannot be had:
/// - an `http`/`https` URI is fetched within the `timeout` its rules give it (5 s by default); one
///   that does not answer 2xx with a JWKS document in time is unreachable for that rule;
/// - `<JWKS server>`, the conformance corpus's name for Istio's test JWT server, is reachable, and
///   `<JWKS server>?delay=500ms` answers after the delay, as that server does;
/// - a rule with neither field gets its keys by OIDC discovery: its issuer's
///   `/.well-known/openid-configuration` is fetched, then the `jwks_uri` it names, each within
///   the rule's timeout; the outcome is recorded under the discovery URL;
/// - a document that is not a JWKS, or one with an empty `keys` list, gives no keys;
/// - inline `jwks` need no fetch (one that holds no key gives none, see `JWTProvider`).
public enum JWKSProbe {
    /// The corpus's placeholder for Istio's test JWT server (tests/common/jwt/jwks.json).
    public static let testServer = "<JWKS server>"

    /// The states of the URIs `rules` fetch their keys from.
    ///
    /// A URI is fetched with the shortest timeout a rule gives it, then, if that fails, with the
    /// next longer one, and so on: the HTTP client's deadline decides, so a busy machine does not
    /// turn a fetch that succeeded into one that was late. A URI that answers only within a
    /// longer timeout is recorded as answering after that timeout, which the rules with shorter
    /// ones do not wait for.
    public static func environment(rules: [JWTRule], fetcher: any HTTPFetcher) async -> JWKSEnvironment {
        await probe(rules: rules, fetcher: fetcher).environment
    }

    /// `environment(rules:fetcher:)`, and a fetcher that answers each probed URI as it answered
    /// the probe (its body, or its error with the real reason) without fetching it again, and
    /// passes any other URI (OIDC discovery) to `fetcher`.
    public static func probe(rules: [JWTRule], fetcher: any HTTPFetcher) async -> (
        environment: JWKSEnvironment, fetcher: any HTTPFetcher
    ) {
        let recording = RecordingFetcher(base: fetcher)
        let environment = await probedEnvironment(rules: rules, fetcher: recording)
        return (environment, await recording.replay())
    }

    private static func probedEnvironment(rules: [JWTRule], fetcher: any HTTPFetcher) async -> JWKSEnvironment {
        var timeouts: [String: Set<Double>] = [:]
        var order: [String] = []
        for rule in rules {
            guard let location = rule.fetchedFrom else { continue }
            if timeouts[location] == nil { order.append(location) }
            timeouts[location, default: []].insert(rule.timeoutMilliseconds ?? JWTProvider.defaultTimeoutMilliseconds)
        }
        let discovery = Set(rules.filter { $0.jwks.isEmpty && $0.jwksURI.isEmpty }.compactMap(\.fetchedFrom))
        // The locations are probed side by side, as a proxy's keys arrive: a check waits for the
        // slowest key server, not for the sum of them.
        let found = await withTaskGroup(of: (String, Probed).self) { group in
            for location in order {
                let tried = (timeouts[location] ?? []).sorted()
                let discovered = discovery.contains(location)
                group.addTask {
                    (location, await state(of: location, timeouts: tried, discovered: discovered, fetcher: fetcher))
                }
            }
            var states: [String: JWKSEnvironment.State] = [:]
            var reasons: [String: String] = [:]
            for await (location, probed) in group {
                states[location] = probed.state
                if let reason = probed.reason { reasons[location] = reason }
            }
            return (states, reasons)
        }
        return JWKSEnvironment(states: found.0, reasons: found.1)
    }

    /// What probing one location found: its state, and why it failed when it did.
    private struct Probed: Sendable {
        let state: JWKSEnvironment.State?
        let reason: String?
    }

    /// The state of one location: fetched with each timeout a rule gives it, shortest first, until
    /// one fetch gives keys (see `environment(rules:fetcher:)`); `nil` when the first does.
    private static func state(
        of location: String, timeouts: [Double], discovered: Bool, fetcher: any HTTPFetcher
    ) async -> Probed {
        if location.hasPrefix(testServer) {
            return Probed(state: testServerDelay(location).map { .latency($0) }, reason: nil)
        }
        var reason: String?
        for (index, timeout) in timeouts.enumerated() {
            let fetched = discovered
                ? await discoveredKeys(location, timeout: timeout, fetcher: fetcher)
                : await fetch(location, timeout: timeout, fetcher: fetcher)
            switch fetched {
            case .success(let keys) where JWTRule.holdsKeys(keys):
                return Probed(state: index == 0 ? nil : .latency(timeout), reason: nil)
            case .success:
                reason = "\(location) answered a document that holds no key"
            case .failure(let error):
                reason = error.reason
            }
        }
        return Probed(state: .unreachable, reason: reason)
    }

    private static func fetch(_ url: String, timeout: Double, fetcher: any HTTPFetcher) async -> Result<String, AuthnError> {
        do throws(AuthnError) {
            return .success(try await fetcher.get(url, timeout: .milliseconds(timeout)))
        } catch {
            return .failure(error)
        }
    }

    /// The JWKS an OIDC discovery document names, each fetch within `timeout` milliseconds, as a
    /// proxy would get it; the failure of either fetch, or a document that names none.
    private static func discoveredKeys(_ url: String, timeout: Double, fetcher: any HTTPFetcher) async -> Result<String, AuthnError> {
        let document: String
        switch await fetch(url, timeout: timeout, fetcher: fetcher) {
        case .success(let text): document = text
        case .failure(let error): return .failure(error)
        }
        let uri: String
        do throws(AuthnError) {
            uri = try JWKSDocumentLoader.jwksURI(inDiscoveryDocument: document, url: url)
        } catch {
            return .failure(error)
        }
        return await fetch(uri, timeout: timeout, fetcher: fetcher)
    }

    /// The `delay` query parameter of a test-server URI, in milliseconds, written as a Go duration
    /// (`500ms`, `1s`, `1m30s`); nil when there is none or it does not parse.
    public static func testServerDelay(_ uri: String) -> Double? {
        guard let query = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for item in query.split(separator: "&") {
            let pair = item.split(separator: "=", maxSplits: 1)
            if pair.count == 2 && pair[0] == "delay" { return goDuration(String(pair[1])) }
        }
        return nil
    }

    /// A Go duration (a sequence of decimal numbers, each with a unit of ns, us, µs, ms, s, m or h)
    /// in milliseconds.
    static func goDuration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ns", 1e-6), ("us", 1e-3), ("µs", 1e-3), ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            // The longest unit that matches ("ms" before "m").
            guard let (unit, scale) = units.filter({ rest.hasPrefix($0.0) }).max(by: { $0.0.count < $1.0.count }) else { return nil }
            rest = rest.dropFirst(unit.count)
            total += value * scale
        }
        return total
    }
}

/// A fetcher for checks made without a proxy: it answers for the JWKS document Istio publishes
/// for its documentation's examples from a copy of its public key, and fetches everything else
/// with `base`.
///
/// Istio's tasks point `jwksUri` at
/// `https://raw.githubusercontent.com/istio/istio/<branch>/security/tools/jwt/samples/jwks.json`
/// and sign their demo tokens with its key, so those examples check the same with or without a
/// network.
public struct PublishedJWKSFetcher: HTTPFetcher {
    /// The fetcher tried first.
    public let base: any HTTPFetcher

    /// Creates a fetcher over `base`.
    public init(base: any HTTPFetcher = AsyncHTTPClientFetcher()) {
        self.base = base
    }

    /// Istio's sample JWKS (security/tools/jwt/samples/jwks.json): one RSA key.
    static let istioSampleJWKS = """
        {"keys":[{"e":"AQAB","kid":"DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ","kty":"RSA",\
        "n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}
        """

    /// The published document at `url`, if it is one.
    static func published(_ url: String) -> String? {
        let prefix = "https://raw.githubusercontent.com/istio/istio/"
        let suffix = "/security/tools/jwt/samples/jwks.json"
        guard url.hasPrefix(prefix), url.hasSuffix(suffix), url.count > prefix.count + suffix.count else { return nil }
        let branch = url.dropFirst(prefix.count).dropLast(suffix.count)
        guard !branch.contains("/") || branch.hasPrefix("refs/heads/") else { return nil }
        return istioSampleJWKS
    }

    /// The published copy for Istio's sample URI, or the document from `base`.
    public func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        if let document = Self.published(url) { return document }
        return try await base.get(url, timeout: timeout)
    }
}

/// Fetches with `base` and keeps the last answer of each URI, for `JWKSProbe.probe`.
private actor RecordingFetcher: HTTPFetcher {
    let base: any HTTPFetcher
    private var answers: [String: Result<String, AuthnError>] = [:]

    init(base: any HTTPFetcher) {
        self.base = base
    }

    nonisolated func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        let answer: Result<String, AuthnError>
        do throws(AuthnError) {
            answer = .success(try await base.get(url, timeout: timeout))
        } catch {
            answer = .failure(error)
        }
        await record(url, answer)
        return try answer.get()
    }

    private func record(_ url: String, _ answer: Result<String, AuthnError>) {
        answers[url] = answer
    }

    func replay() -> ReplayingFetcher {
        ReplayingFetcher(answers: answers, base: base)
    }
}

/// Answers the URIs a probe fetched as they answered it; others are fetched by `base`.
struct ReplayingFetcher: HTTPFetcher {
    let answers: [String: Result<String, AuthnError>]
    let base: any HTTPFetcher

    func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        if let answer = answers[url] { return try answer.get() }
        return try await base.get(url, timeout: timeout)
    }
}
