import Testing

@testable import RampartPolicy

@Suite("destination cache table")
struct DestinationTableTests {
    /// Distinct resolved policies to store, told apart by identity.
    private static func policies(_ count: Int) -> [WorkloadPolicies] {
        (0..<count).map { _ in WorkloadPolicies(policies: [], providers: [], peer: PeerModes(workloadMode: .permissive, portModes: [:], sources: [])) }
    }

    private static func key(_ app: String, namespace: String = "ns1") -> WorkloadKey {
        WorkloadKey(namespace: namespace, labels: ["app": app], keys: ["app"])
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
