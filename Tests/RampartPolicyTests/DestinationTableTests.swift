import Testing

@testable import RampartPolicy

@Suite("destination cache table")
struct DestinationTableTests {
    /// Distinct resolved policies to store, told apart by identity.
    private static func policies(_ count: Int) -> [WorkloadPolicies] {
        (0..<count).map { _ in WorkloadPolicies(policies: [], providers: [], peer: PeerModes(workloadMode: .permissive, portModes: [:], layers: [])) }
    }

    private static func key(_ app: String, namespace: String = "ns1") -> WorkloadKey {
        WorkloadKey(namespace: namespace, labels: ["app": app], keys: ["app"], readsGateway: false)
    }

    @Test("finds each remembered destination's policies, and nothing for others")
    func lookups() {
        var table = DestinationTable(capacity: 64)
        let values = Self.policies(40)
        for (index, value) in values.enumerated() {
            let key = Self.key("app-\(index)")
            table.insert(key, hash: key.cheapHash, value)
        }
        for (index, value) in values.enumerated() {
            let key = Self.key("app-\(index)")
            #expect(table.find(key, hash: key.cheapHash)?.resolved === value.resolved)
        }
        let other = Self.key("app-0", namespace: "ns2")
        #expect(table.find(other, hash: other.cheapHash) == nil)
    }

    @Test("keys whose hashes are equal are told apart by the key")
    func collisions() {
        var table = DestinationTable(capacity: 8)
        let values = Self.policies(3)
        for (index, value) in values.enumerated() { table.insert(Self.key("c-\(index)"), hash: 0x55, value) }
        for (index, value) in values.enumerated() {
            #expect(table.find(Self.key("c-\(index)"), hash: 0x55)?.resolved === value.resolved)
        }
        #expect(table.find(Self.key("c-9"), hash: 0x55) == nil)
        // A second insert of a remembered key keeps the first value.
        table.insert(Self.key("c-0"), hash: 0x55, Self.policies(1)[0])
        #expect(table.find(Self.key("c-0"), hash: 0x55)?.resolved === values[0].resolved)
    }

    @Test("a full table is emptied and refilled")
    func bounded() {
        var table = DestinationTable(capacity: 2)
        let values = Self.policies(3)
        let keys = (0..<3).map { Self.key("b-\($0)") }
        for (key, value) in zip(keys, values) { table.insert(key, hash: key.cheapHash, value) }
        #expect(table.find(keys[0], hash: keys[0].cheapHash) == nil)
        #expect(table.find(keys[1], hash: keys[1].cheapHash) == nil)
        #expect(table.find(keys[2], hash: keys[2].cheapHash)?.resolved === values[2].resolved)
    }
}

@Suite("destination identity memo")
struct IdentityMemoTests {
    private static func identity(_ namespace: String, _ labels: [String: String]) -> DestinationIdentity {
        guard let identity = DestinationIdentity(namespace: namespace, labels: labels) else {
            Issue.record("String or Dictionary has an unexpected size on this platform")
            return DestinationIdentity(namespace: "", labels: [:])!
        }
        return identity
    }

    @Test("one label dictionary has one identity; an equal dictionary built apart has another")
    func identities() {
        let labels = ["app": "reviews-\(Int.random(in: 0..<1000))", "version": "v1"]
        let shared = labels
        #expect(Self.identity("ns1", labels) == Self.identity("ns1", shared))
        var rebuilt: [String: String] = [:]
        for (key, value) in labels { rebuilt[key] = value }
        #expect(rebuilt == labels)
        #expect(Self.identity("ns1", rebuilt) != Self.identity("ns1", labels))
        #expect(Self.identity("ns2", labels) != Self.identity("ns1", labels))
    }

    @Test("finds what it remembered, forgets on removeAll, and replaces within its probe window")
    func remembers() {
        var memo = IdentityMemo(size: 8)
        let dictionaries = (0..<20).map { ["app": "a-\($0)"] }
        let identities = dictionaries.map { Self.identity("ns", $0) }
        for (index, identity) in identities.enumerated() {
            memo.remember(identity, namespace: "ns", labels: dictionaries[index], entry: index)
            // The one just remembered is always found, with its entry.
            #expect(memo.entry(of: identity) == index)
        }
        // Eight slots cannot hold twenty: whatever is found is found with its own entry.
        var found = 0
        for (index, identity) in identities.enumerated() {
            if let entry = memo.entry(of: identity) {
                #expect(entry == index)
                found += 1
            }
        }
        #expect(found > 0 && found <= 8)
        memo.removeAll()
        #expect(identities.allSatisfy { memo.entry(of: $0) == nil })
    }
}

@Suite("per-request destination lookup")
struct DestinationLookupTests {
    private static let yaml = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: reviews-only-a, namespace: ns1}
        spec:
          selector: {matchLabels: {app: reviews}}
          rules: [{from: [{source: {principals: ["cluster.local/ns/ns1/sa/a"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: ratings-deny-get, namespace: ns1}
        spec:
          selector: {matchLabels: {app: ratings}}
          action: DENY
          rules: [{to: [{operation: {methods: ["GET"]}}]}]
        """

    private static func request(_ labels: [String: String], principal: String = "cluster.local/ns/ns1/sa/z")
        -> AuthzRequest
    {
        Fixture.http(principal: principal, labels: labels)
    }

    @Test("a label dictionary seen before, a copy of it, and an equal one built apart decide alike")
    func sharedAndRebuilt() {
        let snapshot = Fixture.engine(Self.yaml).snapshot
        let reviews = ["app": "reviews", "version": "v1"]
        for _ in 0..<3 {
            #expect(snapshot.evaluate(Self.request(reviews)).policy == nil)
            #expect(snapshot.evaluate(Self.request(reviews)).decision == .deny)
            #expect(snapshot.evaluate(Self.request(reviews, principal: "cluster.local/ns/ns1/sa/a")).decision == .allow)
        }
        var rebuilt: [String: String] = [:]
        rebuilt["version"] = "v1"
        rebuilt["app"] = "reviews"
        #expect(snapshot.evaluate(Self.request(rebuilt)).decision == .deny)
        #expect(snapshot.evaluate(Self.request(rebuilt, principal: "cluster.local/ns/ns1/sa/a")).decision == .allow)
    }

    @Test("a dictionary changed after it was seen is looked up by its new labels")
    func mutatedCopy() {
        let snapshot = Fixture.engine(Self.yaml).snapshot
        var labels = ["app": "reviews"]
        #expect(snapshot.evaluate(Self.request(labels)).decision == .deny)
        labels["app"] = "ratings"
        let ratings = snapshot.evaluate(Self.request(labels))
        #expect(ratings.decision == .deny && ratings.policy == "ns1/ratings-deny-get")
        labels["app"] = "details"
        #expect(snapshot.evaluate(Self.request(labels)).decision == .allow)
    }

    @Test("dictionaries made and dropped by the thousand each get their own workload's decision")
    func churn() {
        let snapshot = Fixture.engine(Self.yaml).snapshot
        let apps = ["reviews", "ratings", "details"]
        let expected = apps.map { app in
            snapshot.workload(namespace: "ns1", labels: ["app": app]).evaluate(Self.request(["app": app])).decision
        }
        #expect(expected == [.deny, .deny, .allow])
        for index in 0..<6000 {
            // A fresh dictionary each time, freed after its request: storage addresses get reused.
            let app = apps[index % 3]
            let labels = ["app": app, "pod-template-hash": String(index, radix: 16)]
            #expect(snapshot.evaluate(Self.request(labels)).decision == expected[index % 3])
        }
    }

    @Test("the hasher reads a string's last bytes in one load exactly as one byte at a time")
    func hasherTail() {
        /// The hash with every byte after the whole words read one at a time.
        func reference(_ bytes: [UInt8]) -> UInt64 {
            var value: UInt64 = 0x243F_6A88_85A3_08D3
            func mix(_ word: UInt64) {
                let product = (value ^ word).multipliedFullWidth(by: 0x9E37_79B9_7F4A_7C15)
                value = product.high ^ product.low
            }
            var offset = 0
            while offset + 8 <= bytes.count {
                var word: UInt64 = 0
                for index in 0..<8 { word |= UInt64(bytes[offset + index]) << UInt64(8 * index) }
                mix(word)
                offset += 8
            }
            var tail: UInt64 = 0
            for index in offset..<bytes.count { tail |= UInt64(bytes[index]) << UInt64(8 * (index - offset)) }
            mix(tail ^ UInt64(bytes.count) << 56)
            return value
        }
        let text = Array("cluster.local/ns/payments-0/sa/api-0/é".utf8)
        for length in 0...text.count {
            var hasher = DestinationHasher()
            let prefix = Array(text[..<length])
            prefix.withUnsafeBufferPointer { hasher.combine(bytes: $0) }
            #expect(hasher.value == reference(prefix), "\(length)")
        }
    }
}
