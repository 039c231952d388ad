import Foundation
import RampartAgent
import Testing

@Suite("Rotation timing: renewal point, jitter and back-off")
struct RotationTimingTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("a 24h certificate renews near 12h with the default grace ratio, jitter within ±5% of the lifetime")
    func defaultSchedule() throws {
        let schedule = try RenewalSchedule()
        let end = start.addingTimeInterval(24 * 3600)
        let middle = schedule.renewalTime(notBefore: start, notAfter: end, random: 0.5)
        #expect(middle == start.addingTimeInterval(12 * 3600))
        let earliest = schedule.renewalTime(notBefore: start, notAfter: end, random: 0)
        let latest = schedule.renewalTime(notBefore: start, notAfter: end, random: 0.999_999)
        #expect(abs(earliest.timeIntervalSince(start) - 0.45 * 24 * 3600) < 1)
        #expect(abs(latest.timeIntervalSince(start) - 0.55 * 24 * 3600) < 1)
        for step in 0..<100 {
            let at = schedule.renewalTime(notBefore: start, notAfter: end, random: Double(step) / 100)
            #expect(at >= earliest && at <= latest)
        }
    }

    @Test("the grace ratio moves the renewal point: 0.25 renews at 75% of the lifetime")
    func graceRatio() throws {
        let schedule = try RenewalSchedule(graceRatio: 0.25, jitter: 0)
        let at = schedule.renewalTime(notBefore: start, notAfter: start.addingTimeInterval(100), random: 0.9)
        #expect(at == start.addingTimeInterval(75))
    }

    @Test("renewal never falls in the first or last 5% of the lifetime")
    func clamped() throws {
        let late = try RenewalSchedule(graceRatio: 0.01, jitter: 0.25)
        #expect(late.renewalTime(notBefore: start, notAfter: start.addingTimeInterval(100), random: 0.999) <= start.addingTimeInterval(95))
        let early = try RenewalSchedule(graceRatio: 0.99, jitter: 0.25)
        #expect(early.renewalTime(notBefore: start, notAfter: start.addingTimeInterval(100), random: 0) >= start.addingTimeInterval(5))
    }

    @Test("grace ratios outside (0, 1) and excessive jitter are refused with the option named")
    func badSettings() {
        for bad in [0.0, 1.0, -0.5, 1.5] {
            let error = #expect(throws: AgentError.self) { try RenewalSchedule(graceRatio: bad) }
            #expect(error?.reason.contains("--grace-ratio") == true)
        }
        #expect(throws: AgentError.self) { try RenewalSchedule(graceRatio: 0.5, jitter: 0.5) }
    }

    @Test("back-off doubles from 1 s and stops at 5 minutes")
    func backoffSequence() {
        var backoff = Backoff()
        let delays = (0..<12).map { _ in backoff.nextDelay(random: 0.5) }
        #expect(delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300])
        #expect(backoff.failures == 12)
        backoff.reset()
        #expect(backoff.nextDelay(random: 0.5) == 1)
    }

    @Test("back-off jitter stays within ±20% and never exceeds the maximum")
    func backoffJitter() {
        for attempt in 0..<15 {
            var low = Backoff()
            var high = Backoff()
            var lowDelay = 0.0
            var highDelay = 0.0
            for _ in 0...attempt {
                lowDelay = low.nextDelay(random: 0)
                highDelay = high.nextDelay(random: 0.999_999)
            }
            let base = min(pow(2, Double(attempt)), 300)
            #expect(abs(lowDelay - base * 0.8) < 0.001)
            #expect(highDelay <= 300)
            #expect(highDelay >= base * 1.19 || highDelay == 300)
        }
    }
}
