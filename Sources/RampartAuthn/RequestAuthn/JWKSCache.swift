import Foundation

/// The signing keys of every JWT rule's key source, fetched on first use and refreshed as Istio does.
///
/// Remote keys are refetched every ``refreshInterval`` (20 minutes, Istio's default). A failed fetch
/// keeps the last good keys and is retried after an exponential back-off (``initialBackoff``,
/// doubling, at most ``maxBackoff``); until then the cached answer is served without fetching. A
/// source that has never produced keys answers with its last error, so its tokens fail (401).
/// Concurrent requests for a source share one fetch.
///
/// Only a source's first fetch is waited for. Later fetches, when the keys are due for refresh or
/// a back-off has passed, run in the background while requests get the cached answer at once, as
/// istiod refreshes keys out of the request path: a key server that hangs holds no request.
public actor JWKSCache {
    /// Istio's JWKS refresh interval.
    public static let defaultRefreshInterval: TimeInterval = 20 * 60
    /// The first retry delay after a failed fetch.
    public static let defaultInitialBackoff: TimeInterval = 1

    /// How long fetched keys are used before they are fetched again.
    public nonisolated let refreshInterval: TimeInterval
    /// The delay after the first failed fetch; each further failure doubles it.
    public nonisolated let initialBackoff: TimeInterval
    /// The longest delay between retries.
    public nonisolated let maxBackoff: TimeInterval

    private let loader: JWKSDocumentLoader
    private let clock: any AuthnClock
    private var entries: [JWKSSource: Entry] = [:]
    private var inFlight: [JWKSSource: Task<Entry, Never>] = [:]

    /// What is known about one source.
    private struct Entry: Sendable {
        var keys: JWKSKeySet?
        var lastError: AuthnError?
        var nextFetch: Date
        var failures: Int
    }

    /// Creates an empty cache; by default it fetches with AsyncHTTPClient and reads the wall clock.
    public init(
        fetcher: any HTTPFetcher = AsyncHTTPClientFetcher(), clock: any AuthnClock = SystemAuthnClock(),
        refreshInterval: TimeInterval = JWKSCache.defaultRefreshInterval,
        initialBackoff: TimeInterval = JWKSCache.defaultInitialBackoff, maxBackoff: TimeInterval? = nil
    ) {
        self.loader = JWKSDocumentLoader(fetcher: fetcher)
        self.clock = clock
        self.refreshInterval = refreshInterval
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff ?? refreshInterval
    }

    /// The keys of `source`: on first use, fetched (each request within `timeout`) and waited for;
    /// afterwards the cached answer, with a fetch started in the background when one is due.
    public func keys(for source: JWKSSource, timeout: Duration) async -> Result<JWKSKeySet, AuthnError> {
        let now = clock.now
        if let entry = entries[source] {
            if now >= entry.nextFetch { refresh(source, timeout: timeout) }
            return Self.answer(entry, source)
        }
        let entry = await refresh(source, timeout: timeout).value
        return Self.answer(entry, source)
    }

    /// Waits for every fetch under way (for tests and for callers that prefetch).
    public func settle() async {
        while let task = inFlight.values.first { _ = await task.value }
    }

    /// Starts a fetch of `source`, or joins the one under way; the cache takes its result when it ends.
    @discardableResult
    private func refresh(_ source: JWKSSource, timeout: Duration) -> Task<Entry, Never> {
        if let running = inFlight[source] { return running }
        let previous = entries[source]
        let loader = self.loader
        let clock = self.clock
        let schedule = (refresh: refreshInterval, initial: initialBackoff, max: maxBackoff)
        let task = Task {
            let entry = await Self.refreshed(previous, source: source, loader: loader, timeout: timeout, clock: clock, schedule: schedule)
            await self.store(entry, for: source)
            return entry
        }
        inFlight[source] = task
        return task
    }

    private func store(_ entry: Entry, for source: JWKSSource) {
        inFlight[source] = nil
        entries[source] = entry
    }

    /// When `source` will next be fetched, or `nil` before its first use.
    public func nextFetch(for source: JWKSSource) -> Date? {
        entries[source]?.nextFetch
    }

    /// How many fetches of `source` have failed in a row.
    public func consecutiveFailures(for source: JWKSSource) -> Int {
        entries[source]?.failures ?? 0
    }

    /// The back-off after `failures` consecutive failures: `initial · 2^(failures-1)`, at most `max`.
    public static func backoff(failures: Int, initial: TimeInterval, max: TimeInterval) -> TimeInterval {
        guard failures > 0 else { return 0 }
        let exponent = Double(Swift.min(failures - 1, 62))
        return Swift.min(initial * pow(2, exponent), max)
    }

    private static func answer(_ entry: Entry, _ source: JWKSSource) -> Result<JWKSKeySet, AuthnError> {
        if let keys = entry.keys { return .success(keys) }
        return .failure(entry.lastError ?? AuthnError(.keySourceUnavailable, "no keys have been loaded from \(source)"))
    }

    private static func refreshed(
        _ previous: Entry?, source: JWKSSource, loader: JWKSDocumentLoader, timeout: Duration, clock: any AuthnClock,
        schedule: (refresh: TimeInterval, initial: TimeInterval, max: TimeInterval)
    ) async -> Entry {
        let result = await load(source, loader: loader, timeout: timeout)
        // The next fetch is counted from when this one ended: a fetch that took longer than the
        // back-off would otherwise leave every later request to fetch again, and wait as long.
        let now = clock.now
        switch result {
        case .success(let keys):
            // Inline keys are part of the configuration and never change.
            let next = source.isRemote ? now.addingTimeInterval(schedule.refresh) : .distantFuture
            return Entry(keys: keys, lastError: nil, nextFetch: next, failures: 0)
        case .failure(let error):
            if !source.isRemote {
                return Entry(keys: nil, lastError: error, nextFetch: .distantFuture, failures: 1)
            }
            let failures = (previous?.failures ?? 0) + 1
            let delay = backoff(failures: failures, initial: schedule.initial, max: schedule.max)
            return Entry(keys: previous?.keys, lastError: error, nextFetch: now.addingTimeInterval(delay), failures: failures)
        }
    }

    private static func load(_ source: JWKSSource, loader: JWKSDocumentLoader, timeout: Duration) async -> Result<JWKSKeySet, AuthnError> {
        do throws(AuthnError) {
            let text = try await loader.document(source, timeout: timeout)
            return .success(try await JWKSKeySet.load(json: text, origin: "the JWKS from \(source)"))
        } catch {
            return .failure(error)
        }
    }
}
