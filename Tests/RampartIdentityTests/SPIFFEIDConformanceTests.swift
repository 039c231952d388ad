import Foundation
import Testing

@testable import RampartIdentity

/// One case of go-spiffe's parsing vectors (see Tests/Fixtures/spiffeid-cases.json and its NOTICE.md for sources).
struct SPIFFECase: Decodable, CustomTestStringConvertible {
    enum Input: Decodable {
        case string(String)
        case list([String])
        case other

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(String.self) {
                self = .string(value)
            } else if let value = try? container.decode([String].self) {
                self = .list(value)
            } else {
                self = .other
            }
        }
    }

    let api: String
    let input: Input?
    let valid: Bool
    let expected_trust_domain: String?
    let expected_path: String?
    let expected_error: String?
    let reason: String?

    var testDescription: String { "\(api) \(String(describing: input)) valid=\(valid)" }
}

struct SPIFFECorpus: Decodable {
    let cases: [SPIFFECase]

    static func load() throws -> [SPIFFECase] {
        // Tests/Fixtures, shared by the test targets, found from this file's own path.
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/spiffeid-cases.json")
        return try JSONDecoder().decode(SPIFFECorpus.self, from: Data(contentsOf: url)).cases
    }
}

@Suite("SPIFFE ID parsing matches go-spiffe's vectors")
struct SPIFFEIDConformanceTests {
    @Test("FromString cases")
    func fromString() throws {
        let cases = try SPIFFECorpus.load().filter { $0.api == "FromString" }
        #expect(cases.count > 500)
        for c in cases {
            guard case .string(let input) = c.input else { continue }
            do {
                let id = try SPIFFEID(parsing: input)
                #expect(c.valid, "accepted \(input.debugDescription), expected: \(c.expected_error ?? "")")
                if let td = c.expected_trust_domain { #expect(id.trustDomain.name == td) }
                if let path = c.expected_path { #expect(id.path == path) }
                #expect(id.string == input)
            } catch {
                #expect(!c.valid, "refused \(input.debugDescription): \(error)")
            }
        }
    }

    @Test("TrustDomainFromString cases")
    func trustDomainFromString() throws {
        let cases = try SPIFFECorpus.load().filter { $0.api == "TrustDomainFromString" }
        #expect(cases.count > 200)
        for c in cases {
            guard case .string(let input) = c.input else { continue }
            do {
                let td = try TrustDomain(input)
                #expect(c.valid, "accepted \(input.debugDescription)")
                if let expected = c.expected_trust_domain { #expect(td.name == expected) }
            } catch {
                #expect(!c.valid, "refused \(input.debugDescription): \(error)")
            }
        }
    }

    @Test("path segment and FromSegments cases")
    func segments() throws {
        let all = try SPIFFECorpus.load()
        let td = try TrustDomain("trustdomain")
        var checked = 0
        for c in all {
            switch (c.api, c.input) {
            case ("ValidatePathSegment", .string(let segment)?):
                #expect((try? SPIFFEID.validateSegment(segment)) != nil || !c.valid, "\(segment)")
                #expect((try? SPIFFEID.validateSegment(segment)) == nil || c.valid, "\(segment)")
                checked += 1
            case ("FromSegments(td=trustdomain)", let input):
                var segments: [String] = []
                if case .list(let list)? = input { segments = list }
                let id = try? SPIFFEID(trustDomain: td, segments: segments)
                #expect((id != nil) == c.valid, "\(segments)")
                if let id, let path = c.expected_path { #expect(id.path == path) }
                checked += 1
            case ("JoinPathSegments", .list(let list)?):
                #expect((try? SPIFFEID.join(list)) == c.expected_path)
                checked += 1
            default:
                continue
            }
        }
        #expect(checked >= 15)
    }
}

@Suite("Istio workload identities")
struct WorkloadIdentityTests {
    @Test("builds and reads back spiffe://td/ns/<ns>/sa/<sa>")
    func workload() throws {
        let id = try SPIFFEID.workload(trustDomain: .clusterLocal, namespace: "default", serviceAccount: "web")
        #expect(id.string == "spiffe://cluster.local/ns/default/sa/web")
        #expect(id.principal == "cluster.local/ns/default/sa/web")
        #expect(id.istioWorkload?.namespace == "default")
        #expect(id.istioWorkload?.serviceAccount == "web")
    }

    @Test("maps Kubernetes service-account subjects the way Istio does")
    func kubernetesSubject() throws {
        let td = try TrustDomain("example.org")
        let id = KubernetesServiceAccount.spiffeID(forSubject: "system:serviceaccount:shop:cart", trustDomain: td)
        #expect(id?.string == "spiffe://example.org/ns/shop/sa/cart")
        #expect(KubernetesServiceAccount.spiffeID(forSubject: "user:alice", trustDomain: td) == nil)
        #expect(KubernetesServiceAccount.spiffeID(forSubject: "system:serviceaccount:a:b:c", trustDomain: td) == nil)
        #expect(KubernetesServiceAccount.spiffeID(forSubject: "system:serviceaccount::b", trustDomain: td) == nil)
    }

    @Test("joining segments checks each one, as go-spiffe's JoinPathSegments does")
    func joinChecksSegments() throws {
        #expect(try SPIFFEID.join(["a", "b"]) == "/a/b")
        #expect(try SPIFFEID.join([]) == "")
        for (segment, code) in [("", IdentityError.Code.emptySegment), (".", .dotSegment), ("..", .dotSegment), ("/", .badPathCharacter), ("a/b", .badPathCharacter)] {
            do {
                _ = try SPIFFEID.join(["ok", segment])
                Issue.record("\(segment) joined")
            } catch {
                #expect(error.code == code, "\(segment): \(error)")
            }
        }
    }

    @Test("an ID made from parts is at most 2048 bytes, as go-spiffe makes them; a longer one still parses")
    func maxLength() throws {
        // spiffe://cluster.local (22 bytes) + "/" + 2025 bytes = 2048.
        let longest = try SPIFFEID(trustDomain: .clusterLocal, segments: [String(repeating: "a", count: 2025)])
        #expect(longest.string.utf8.count == 2048)
        do {
            _ = try SPIFFEID(trustDomain: .clusterLocal, segments: [String(repeating: "a", count: 2026)])
            Issue.record("a 2049-byte ID was made")
        } catch {
            #expect(error.code == .tooLong && error.reason.contains("2049"), "\(error)")
        }
        let parsed = try SPIFFEID(parsing: "spiffe://cluster.local/" + String(repeating: "a", count: 3000))
        #expect(parsed.path.utf8.count == 3001)
    }

    @Test("a CA's trust domain is at most 255 bytes, as RFC 3986 bounds a host; a longer one still parses")
    func trustDomainLength() throws {
        try TrustDomain(String(repeating: "a", count: 255)).checkIssuable()
        let long = try TrustDomain(String(repeating: "b", count: 256))
        do {
            try long.checkIssuable()
            Issue.record("a 256-byte trust domain can be issued in")
        } catch {
            #expect(error.code == .tooLong && error.reason.contains("256 bytes"), "\(error)")
        }
        let id = try SPIFFEID(parsing: "spiffe://\(long.name)/ns/a/sa/b")
        #expect(id.trustDomain == long)
    }

    @Test("error messages name the offending value")
    func errorMessages() {
        #expect(throws: IdentityError(.badScheme, "")) { try SPIFFEID(parsing: "https://cluster.local/ns/a") }
        do {
            _ = try SPIFFEID(parsing: "spiffe://Cluster.local/ns/a")
            Issue.record("uppercase trust domain accepted")
        } catch {
            #expect(error.reason.contains("Cluster.local"))
            #expect(error.code == .badTrustDomainCharacter)
        }
    }
}
