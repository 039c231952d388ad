import Crypto
import Foundation
import RampartPKI
import Testing
import X509
import _CryptoExtras

@Suite("Issuance policy lifetimes")
struct IssuancePolicyTests {
    static let day: Int64 = 86400

    @Test("0 seconds asks for the 24-hour default")
    func zeroMeansDefault() throws {
        #expect(try IssuancePolicy().ttl(forRequestedSeconds: 0) == TimeInterval(Self.day))
    }

    @Test("lifetimes from 10 seconds to 90 days are granted as asked", arguments: [10, 11, 3600, day, 90 * day - 1, 90 * day])
    func inRangeGranted(seconds: Int64) throws {
        #expect(try IssuancePolicy().ttl(forRequestedSeconds: seconds) == TimeInterval(seconds))
    }

    @Test("lifetimes below 10 seconds, above 90 days, or negative are refused", arguments: [1, 9, 90 * day + 1, 365 * day, Int64.max, -1, -3600, Int64.min])
    func outOfRangeRefused(seconds: Int64) async {
        let error = await expectPKIError(.badValidity) { _ = try IssuancePolicy().ttl(forRequestedSeconds: seconds) }
        #expect(error?.reason.contains("\(seconds)") == true, "the reason should name the requested value")
    }

    @Test("a custom policy applies its own default and bounds")
    func customPolicy() async throws {
        let policy = IssuancePolicy(defaultTTL: 3600, maxTTL: 7200, minTTL: 60, backdate: 5)
        #expect(try policy.ttl(forRequestedSeconds: 0) == 3600)
        #expect(try policy.ttl(forRequestedSeconds: 60) == 60)
        #expect(try policy.ttl(forRequestedSeconds: 7200) == 7200)
        await expectPKIError(.badValidity) { _ = try policy.ttl(forRequestedSeconds: 59) }
        await expectPKIError(.badValidity) { _ = try policy.ttl(forRequestedSeconds: 7201) }
    }

    @Test("the default policy follows Istio")
    func defaults() {
        let policy = IssuancePolicy()
        #expect(policy.defaultTTL == 24 * 3600)
        #expect(policy.maxTTL == 90 * 24 * 3600)
        #expect(policy.minTTL == 10)
        #expect(policy.backdate > 0)
    }
}

@Suite("Key algorithms")
struct KeyAlgorithmTests {
    @Test("a generated key classifies as its own algorithm", arguments: KeyAlgorithm.allCases)
    func generateThenClassify(algorithm: KeyAlgorithm) throws {
        let key = try algorithm.generate()
        #expect(try KeyAlgorithm.classify(key.publicKey).get() == algorithm)
    }

    @Test("two generated keys differ")
    func keysAreFresh() throws {
        #expect(try KeyAlgorithm.ecP256.generate().publicKey != KeyAlgorithm.ecP256.generate().publicKey)
    }

    @Test("only RSA algorithms are RSA")
    func isRSA() {
        for algorithm in KeyAlgorithm.allCases {
            #expect(algorithm.isRSA == algorithm.rawValue.hasPrefix("rsa-"))
        }
    }

    @Test("algorithm names round-trip through their raw values", arguments: ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"])
    func rawValues(name: String) throws {
        let algorithm = try #require(KeyAlgorithm(rawValue: name))
        #expect(algorithm.rawValue == name)
    }

    @Test("P-521 keys are classified as unsupported")
    func p521Unsupported() {
        let key = Certificate.PrivateKey(P521.Signing.PrivateKey()).publicKey
        guard case .failure(let error) = KeyAlgorithm.classify(key) else {
            Issue.record("P-521 was accepted")
            return
        }
        #expect(error.code == .unsupportedKey)
    }
}
