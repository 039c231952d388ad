import Foundation
import Synchronization
import RampartAuthn
import RampartPolicy
import Testing

@Suite("RequestAuthentication: JWKS sources and the key cache")
struct JWKSCacheTests {
    let jwksURL = "https://issuer.example/jwks"

    @Test("fetched keys are reused for 20 minutes, then refetched")
    func refreshAfterTwentyMinutes() async throws {
        let clock = ManualClock()
        let fetcher = ScriptedFetcher()
        let first = IssuerKey(kid: "k1")
        fetcher.serve(jwksURL, try jwksJSON([first.jwk]))
        let cache = JWKSCache(fetcher: fetcher, clock: clock)
        let source = JWKSSource.uri(jwksURL)
        #expect(try await cache.keys(for: source, timeout: .seconds(5)).get().kids == ["k1"])
        #expect(await cache.nextFetch(for: source) == clock.now.addingTimeInterval(20 * 60))

        // The issuer rotates; the cache keeps its keys until the refresh interval passes.
        fetcher.serve(jwksURL, try jwksJSON([IssuerKey(kid: "k2").jwk]))
        clock.advance(by: 20 * 60 - 1)
        #expect(try await cache.keys(for: source, timeout: .seconds(5)).get().kids == ["k1"])
        #expect(fetcher.calls(jwksURL) == 1)
        clock.advance(by: 1)
        // Due for refresh: the request gets the keys it had at once, and the fetch runs beside it.
        #expect(try await cache.keys(for: source, timeout: .seconds(5)).get().kids == ["k1"])
        await cache.settle()
        #expect(try await cache.keys(for: source, timeout: .seconds(5)).get().kids == ["k2"])
        #expect(fetcher.calls(jwksURL) == 2)
    }

    @Test("a failed refresh keeps the last good keys and retries with exponential back-off")
    func backoffKeepsLastGoodKeys() async throws {
        let clock = ManualClock()
        let fetcher = ScriptedFetcher()
        fetcher.serve(jwksURL, try jwksJSON([IssuerKey(kid: "k1").jwk]))
        let cache = JWKSCache(fetcher: fetcher, clock: clock)
        let source = JWKSSource.uri(jwksURL)
        _ = await cache.keys(for: source, timeout: .seconds(5))
        fetcher.fail(jwksURL)
        clock.advance(by: 20 * 60)
        var expectedCalls = 1
        for delay in [1.0, 2, 4, 8] {
            #expect(try await cache.keys(for: source, timeout: .seconds(5)).get().kids == ["k1"])
            await cache.settle()
            expectedCalls += 1
            #expect(fetcher.calls(jwksURL) == expectedCalls)
            #expect(await cache.nextFetch(for: source) == clock.now.addingTimeInterval(delay))
            clock.advance(by: delay - 0.5)
            _ = await cache.keys(for: source, timeout: .seconds(5))
            #expect(fetcher.calls(jwksURL) == expectedCalls, "no fetch inside the back-off of \(delay) s")
            clock.advance(by: 0.5)
        }
        #expect(await cache.consecutiveFailures(for: source) == 4)
        fetcher.serve(jwksURL, try jwksJSON([IssuerKey(kid: "k2").jwk]))
        #expect(try await cache.keys(for: source, timeout: .seconds(5)).get().kids == ["k1"])
        await cache.settle()
        #expect(try await cache.keys(for: source, timeout: .seconds(5)).get().kids == ["k2"])
        #expect(await cache.consecutiveFailures(for: source) == 0)
        #expect(JWKSCache.backoff(failures: 40, initial: 1, max: 1200) == 1200)
    }

    @Test("the back-off counts from when a slow failed fetch ended, so the requests after it do not fetch again")
    func backoffAfterSlowFailure() async throws {
        let clock = ManualClock()
        let fetcher = SlowFailingFetcher(clock: clock, takes: 5)
        let cache = JWKSCache(fetcher: fetcher, clock: clock)
        let source = JWKSSource.uri(jwksURL)
        _ = await cache.keys(for: source, timeout: .seconds(5))
        #expect(await cache.nextFetch(for: source) == clock.now.addingTimeInterval(1))
        _ = await cache.keys(for: source, timeout: .seconds(5))
        #expect(fetcher.calls == 1, "a request right after a 5 s failure waits out the 1 s back-off instead of fetching")
        clock.advance(by: 1)
        _ = await cache.keys(for: source, timeout: .seconds(5))
        await cache.settle()
        #expect(fetcher.calls == 2)
        #expect(await cache.nextFetch(for: source) == clock.now.addingTimeInterval(2))
    }

    @Test("a refused connection fails the fetch at once, with its own reason, not at the deadline; a 2xx answer is a document")
    func refusedConnection() async throws {
        let server = try LocalHTTPServer()
        let closed = server.url("keys.json")
        server.stop()
        do {
            _ = try await AsyncHTTPClientFetcher().get(closed, timeout: .seconds(30))
            Issue.record("a closed port answered")
        } catch {
            #expect(!error.reason.contains("did not answer within"), "\(error.reason)")
            // The connection's own error, not the deadline that retrying connections would reach.
            #expect(error.reason.lowercased().contains("refused"), "\(error.reason)")
        }
    }

    @Test("a server that sends its headers and then stalls fails the fetch at the rule's timeout")
    func stalledBody() async throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let started = ContinuousClock.now
        do {
            _ = try await AsyncHTTPClientFetcher().get(server.url("stall"), timeout: .milliseconds(500))
            Issue.record("a stalled body was read")
        } catch {
            #expect(error.reason.contains("did not answer within"), "\(error.reason)")
        }
        // Bounded by the timeout, not by the server's 300 s stall (with room for a loaded machine:
        // alone, it takes about a second).
        #expect(ContinuousClock.now - started < .seconds(100))
    }

    @Test("keys prefetched when the config arrives are there for the first token, which fetches nothing")
    func prefetch() async throws {
        let clock = ManualClock()
        let fetcher = ScriptedFetcher()
        let key = IssuerKey(kid: "k1")
        fetcher.serve(jwksURL, try jwksJSON([key.jwk]))
        let rules = try providers(rules: ["{issuer: '\(requestIssuer)', jwksUri: '\(jwksURL)'}"])
        let authenticator = RequestAuthenticator(fetcher: fetcher, clock: clock)
        await authenticator.prefetch(rules)
        #expect(fetcher.calls(jwksURL) == 1)
        let token = try await key.sign(any: requestClaims(now: clock.now))
        let result = await authenticator.authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
        #expect(result.failure == nil, "\(result.failure?.reason ?? "")")
        #expect(fetcher.calls(jwksURL) == 1)
    }

    @Test("with no keys ever fetched, the issuer's tokens fail with 401 and the fetch error")
    func noKeysMeansUnauthorized() async throws {
        let clock = ManualClock()
        let fetcher = ScriptedFetcher()
        fetcher.fail(jwksURL)
        let key = IssuerKey(kid: "k1")
        let rules = try providers(rules: ["{issuer: '\(requestIssuer)', jwksUri: '\(jwksURL)'}"])
        let authenticator = RequestAuthenticator(fetcher: fetcher, clock: clock)
        let token = try await key.sign(any: requestClaims(now: clock.now))
        let result = await authenticator.authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
        #expect(result.failure?.kind == .keysUnavailable)
        #expect(result.status == 401)
        #expect(result.failure?.reason.contains("503") == true, "\(result.failure?.reason ?? "")")

        // After the back-off the JWKS answers: the request that finds the retry due is answered
        // at once (its fetch runs beside it), and once the keys are in, the same token verifies.
        fetcher.serve(jwksURL, try jwksJSON([key.jwk]))
        clock.advance(by: 1)
        let due = await authenticator.authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
        #expect(due.failure?.kind == .keysUnavailable)
        await authenticator.cache.settle()
        let retried = await authenticator.authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
        #expect(retried.failure == nil, "\(retried.failure?.reason ?? "")")
    }

    @Test("an inline jwks that does not parse makes the rule's tokens fail with a reason")
    func badInlineJWKS() async throws {
        let clock = ManualClock()
        let rules = try providers(rules: [inlineRule(#"{"keys": 1}"#)], validated: false)
        let token = try await IssuerKey(kid: "k1").sign(any: requestClaims(now: clock.now))
        let result = await RequestAuthenticator(fetcher: ScriptedFetcher(), clock: clock)
            .authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
        #expect(result.failure?.kind == .keysUnavailable)
        #expect(result.failure?.reason.contains("inline jwks") == true, "\(result.failure?.reason ?? "")")
    }

    @Test("jwksUri is fetched over HTTP from a real server on 127.0.0.1")
    func jwksURIOverHTTP() async throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let key = IssuerKey(kid: "k1")
        try server.serve(try jwksJSON([key.jwk]), at: "keys/jwks.json")
        let rules = try providers(rules: ["{issuer: '\(requestIssuer)', jwksUri: '\(server.url("keys/jwks.json"))', timeout: 30s}"])
        let token = try await key.sign(any: requestClaims(now: Date()))
        let result = await RequestAuthenticator().authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: rules)
        #expect(result.failure == nil, "\(result.failure?.reason ?? "")")
        #expect(result.outcome.requestPrincipal == "\(requestIssuer)/alice")

        let missing = try providers(rules: ["{issuer: '\(requestIssuer)', jwksUri: '\(server.url("nope.json"))'}"])
        let refused = await RequestAuthenticator().authenticate(cartRequest(headers: ["authorization": "Bearer \(token)"]), providers: missing)
        #expect(refused.failure?.kind == .keysUnavailable)
        #expect(refused.failure?.reason.contains("404") == true, "\(refused.failure?.reason ?? "")")
    }

    @Test("with neither jwks nor jwksUri, keys come from the issuer's OIDC discovery document")
    func oidcDiscovery() async throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let issuer = "http://127.0.0.1:\(server.port)/realms/shop"
        let key = IssuerKey(kid: "oidc")
        try server.serve(try jwksJSON([key.jwk]), at: "realms/shop/certs")
        try server.serve(#"{"issuer": "\#(issuer)", "jwks_uri": "\#(server.url("realms/shop/certs"))"}"#, at: "realms/shop/.well-known/openid-configuration")
        let rules = try providers(rules: ["{issuer: '\(issuer)', timeout: 30s}"])
        #expect(JWKSSource(rule: rules[0].rule) == .discovery(issuer: issuer))
        let token = try await key.sign(any: requestClaims(now: Date(), issuer: issuer))
        let result = await RequestAuthenticator().authenticate(cartRequest(path: "/items?access_token=\(token)"), providers: rules)
        #expect(result.failure == nil, "\(result.failure?.reason ?? "")")
        #expect(result.outcome.requestPrincipal == "\(issuer)/alice")
    }

    @Test("a stated JWKS environment makes unreachable or slow URIs fail without fetching")
    func statedEnvironment() async throws {
        let fetcher = ScriptedFetcher()
        fetcher.serve(jwksURL, "{}")
        let environment = JWKSEnvironment(states: [jwksURL: .latency(800), "https://down.example/jwks": .unreachable])
        let stated = JWKSEnvironmentFetcher(environment: environment, base: fetcher)
        await #expect(throws: AuthnError.self) { _ = try await stated.get(jwksURL, timeout: .milliseconds(500)) }
        await #expect(throws: AuthnError.self) { _ = try await stated.get("https://down.example/jwks", timeout: .seconds(5)) }
        #expect(fetcher.calls(jwksURL) == 0)
        #expect(try await stated.get(jwksURL, timeout: .seconds(1)) == "{}")
    }
}

/// A fetcher whose every fetch fails after `takes` seconds of the manual clock.
final class SlowFailingFetcher: HTTPFetcher {
    let clock: ManualClock
    let takes: TimeInterval
    private let count = Mutex(0)

    init(clock: ManualClock, takes: TimeInterval) {
        self.clock = clock
        self.takes = takes
    }

    var calls: Int { count.withLock { $0 } }

    func get(_ url: String, timeout: Duration) async throws(AuthnError) -> String {
        count.withLock { $0 += 1 }
        clock.advance(by: takes)
        throw AuthnError(.keySourceUnavailable, "\(url) did not answer within \(timeout)")
    }
}
