import Foundation
import GRDB
import RampartStore
import Testing

/// A small AuthorizationPolicy document; the store never parses it, so any text will do.
func policyYAML(_ name: String, namespace: String = "shop", action: String = "ALLOW") -> String {
    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: \(name), namespace: \(namespace)}\nspec: {action: \(action)}\n"
}

func configPolicy(_ name: String, namespace: String = "shop", action: String = "ALLOW") -> ConfigResourceInput {
    ConfigResourceInput(kind: "AuthorizationPolicy", namespace: namespace, name: name, yaml: policyYAML(name, namespace: namespace, action: action))
}

@Suite("Config store: apply, get, delete and the global version")
struct ConfigStoreTests {
    @Test("a fresh store is at config version 0 with no resources")
    func freshStore() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        #expect(try await store.configVersion() == 0)
        #expect(try await store.configResources(kind: nil, namespace: nil).isEmpty)
        #expect(try await store.appliedMigrations().contains("v2-config"))
    }

    @Test("apply creates at generation 1, re-applying is unchanged, a changed document is configured at generation 2")
    func createUnchangedConfigured() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()

        let first = try await store.applyConfig([configPolicy("a"), configPolicy("b")], at: referenceTime, actor: "admin")
        #expect(first.outcomes.map(\.change) == [.created, .created])
        #expect(first.outcomes.map(\.generation) == [1, 1])
        #expect(first.version == 1)

        let again = try await store.applyConfig([configPolicy("a"), configPolicy("b")], at: referenceTime.addingTimeInterval(5), actor: "admin")
        #expect(again.outcomes.map(\.change) == [.unchanged, .unchanged])
        #expect(again.outcomes.map(\.generation) == [1, 1])
        #expect(again.version == 1, "an apply that changes nothing must not bump the version")
        #expect(!again.changedAnything)

        let later = referenceTime.addingTimeInterval(10)
        let changed = try await store.applyConfig([configPolicy("a", action: "DENY"), configPolicy("b")], at: later, actor: "admin")
        #expect(changed.outcomes.map(\.change) == [.configured, .unchanged])
        #expect(changed.outcomes.map(\.generation) == [2, 1])
        #expect(changed.version == 2)

        let a = try #require(try await store.configResource(ConfigResourceKey(kind: "AuthorizationPolicy", namespace: "shop", name: "a")))
        #expect(a.generation == 2)
        #expect(a.yaml == policyYAML("a", action: "DENY"))
        #expect(a.createdAt == referenceTime)
        #expect(a.updatedAt == later)
        let b = try #require(try await store.configResource(ConfigResourceKey(kind: "AuthorizationPolicy", namespace: "shop", name: "b")))
        #expect(b.updatedAt == referenceTime, "an unchanged resource keeps its update time")
    }

    @Test("a change the caller found to be metadata-only keeps the generation, unless the stored text moved on since")
    func metadataOnlyChange() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let key = ConfigResourceKey(kind: "AuthorizationPolicy", namespace: "shop", name: "a")
        _ = try await store.applyConfig([configPolicy("a")], at: referenceTime, actor: "admin")
        let labelled = policyYAML("a").replacingOccurrences(of: "namespace: shop}", with: "namespace: shop, labels: {team: web}}")

        let relabel = ConfigResourceInput(
            kind: "AuthorizationPolicy", namespace: "shop", name: "a", yaml: labelled, specSameAs: policyYAML("a"))
        let preview = try await store.previewConfig([relabel], at: referenceTime, actor: "admin")
        let applied = try await store.applyConfig([relabel], at: referenceTime.addingTimeInterval(5), actor: "admin")
        #expect(preview == applied)
        #expect(applied.outcomes.map(\.change) == [.configured] && applied.outcomes.map(\.generation) == [1])
        #expect(applied.version == 2, "a metadata change is still a change of the config")
        let stored = try #require(try await store.configResource(key))
        #expect(stored.yaml == labelled && stored.generation == 1)

        // Compared against a text the store no longer holds: the comparison says nothing about
        // what is stored now, so the generation goes up.
        let stale = ConfigResourceInput(
            kind: "AuthorizationPolicy", namespace: "shop", name: "a", yaml: policyYAML("a", action: "DENY"),
            specSameAs: policyYAML("a"))
        let changed = try await store.applyConfig([stale], at: referenceTime.addingTimeInterval(10), actor: "admin")
        #expect(changed.outcomes.map(\.generation) == [2])
        #expect(try await store.configResource(key)?.generation == 2)
    }

    @Test("a preview reports what apply would do and stores nothing: no rows, no version, no audit event")
    func preview() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        _ = try await store.applyConfig([configPolicy("a")], at: referenceTime, actor: "admin")
        let eventsBefore = try await store.events().count

        let later = referenceTime.addingTimeInterval(5)
        let batch = [configPolicy("a", action: "DENY"), configPolicy("b")]
        let preview = try await store.previewConfig(batch, at: later, actor: "admin")
        #expect(preview.outcomes.map(\.change) == [.configured, .created])
        #expect(preview.outcomes.map(\.generation) == [2, 1])
        #expect(preview.version == 2)

        #expect(try await store.configVersion() == 1)
        #expect(try await store.events().count == eventsBefore)
        let stored = try await store.configResources(kind: nil, namespace: nil)
        #expect(stored.map(\.name) == ["a"] && stored.first?.generation == 1 && stored.first?.yaml == policyYAML("a"))

        let applied = try await store.applyConfig(batch, at: later, actor: "admin")
        #expect(applied == preview, "the preview must say exactly what the apply then does")

        do {
            _ = try await store.previewConfig([configPolicy("c"), configPolicy("c")], at: later, actor: "admin")
            Issue.record("a preview accepted a batch that apply refuses")
        } catch let error as StoreError {
            #expect(error.code == .conflict)
        }
    }

    @Test("a batch delete removes what is stored in one version bump, audits each, and returns the rest as missing")
    func batchDelete() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        _ = try await store.applyConfig([configPolicy("a"), configPolicy("b"), configPolicy("c")], at: referenceTime, actor: "admin")
        let eventsBefore = try await store.events().count
        let key = { (name: String) in ConfigResourceKey(kind: "AuthorizationPolicy", namespace: "shop", name: name) }

        let result = try await store.deleteConfig([key("a"), key("zz"), key("c"), key("a")], at: referenceTime, actor: "admin")
        #expect(result.deleted.map(\.name) == ["a", "c"])
        #expect(result.missing == [key("zz")])
        #expect(result.version == 2)
        #expect(try await store.configVersion() == 2)
        #expect(try await store.configResources(kind: nil, namespace: nil).map(\.name) == ["b"])
        let events = try await store.events()
        #expect(events.count == eventsBefore + 2)
        #expect(events.suffix(2).map(\.eventType) == [AuditEventType.configDeleted.rawValue, AuditEventType.configDeleted.rawValue])

        let nothing = try await store.deleteConfig([key("zz")], at: referenceTime, actor: "admin")
        #expect(nothing.deleted.isEmpty && nothing.missing == [key("zz")] && nothing.version == 2)
        #expect(try await store.events().count == eventsBefore + 2)
    }

    @Test("a batch that names one resource twice stores nothing, and says which items")
    func duplicateInBatch() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let eventsBefore = try await store.events().count
        do {
            _ = try await store.applyConfig([configPolicy("a"), configPolicy("b"), configPolicy("a", action: "DENY")], at: referenceTime, actor: "admin")
            Issue.record("a duplicate in the batch was accepted")
        } catch let error as StoreError {
            #expect(error.code == .conflict)
            #expect(error.reason.contains("AuthorizationPolicy shop/a"), "\(error.reason)")
            #expect(error.reason.contains("items 1 and 3"), "\(error.reason)")
        }
        #expect(try await store.configResources(kind: nil, namespace: nil).isEmpty)
        #expect(try await store.configVersion() == 0)
        #expect(try await store.events().count == eventsBefore)
    }

    @Test("a write that fails mid-batch rolls back every row, the version and the audit events")
    func failureMidBatchStoresNothing() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        _ = try await store.applyConfig([configPolicy("existing")], at: referenceTime, actor: "admin")
        let eventsBefore = try await store.events().count

        // Make SQLite itself refuse the third row, after the first two were written in the transaction.
        try await directory.rawConnection().write { db in
            try db.execute(sql: """
                CREATE TRIGGER refuse_boom BEFORE INSERT ON config_resources WHEN NEW.name = 'boom'
                BEGIN SELECT RAISE(ABORT, 'boom is refused'); END
                """)
        }
        await expectStoreError(.conflict) {
            _ = try await store.applyConfig(
                [configPolicy("new"), configPolicy("existing", action: "DENY"), configPolicy("boom")], at: referenceTime.addingTimeInterval(1), actor: "admin"
            )
        }
        let stored = try await store.configResources(kind: nil, namespace: nil)
        #expect(stored.map(\.name) == ["existing"])
        #expect(stored.first?.generation == 1)
        #expect(stored.first?.yaml == policyYAML("existing"))
        #expect(try await store.configVersion() == 1)
        #expect(try await store.events().count == eventsBefore)
        #expect(try await store.verifyAuditChain() == .intact(events: eventsBefore))
    }

    @Test("an empty name is refused by the schema and nothing of the batch is stored")
    func emptyNameRefused() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        await expectStoreError(.conflict) {
            _ = try await store.applyConfig(
                [configPolicy("a"), ConfigResourceInput(kind: "AuthorizationPolicy", namespace: "shop", name: "", yaml: "x")], at: referenceTime, actor: "admin"
            )
        }
        #expect(try await store.configResources(kind: nil, namespace: nil).isEmpty)
        #expect(try await store.configVersion() == 0)
    }

    @Test("delete removes one resource and bumps the version; a missing one is notFound naming it")
    func delete() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        _ = try await store.applyConfig([configPolicy("a"), configPolicy("b")], at: referenceTime, actor: "admin")
        let key = ConfigResourceKey(kind: "AuthorizationPolicy", namespace: "shop", name: "a")
        let deletion = try await store.deleteConfig(key, at: referenceTime.addingTimeInterval(1), actor: "admin")
        #expect(deletion.record.name == "a")
        #expect(deletion.version == 2)
        #expect(try await store.configResource(key) == nil)
        #expect(try await store.configResources(kind: nil, namespace: nil).map(\.name) == ["b"])
        do {
            _ = try await store.deleteConfig(key, at: referenceTime.addingTimeInterval(2), actor: "admin")
            Issue.record("deleting a missing resource succeeded")
        } catch let error as StoreError {
            #expect(error.code == .notFound)
            #expect(error.reason.contains("AuthorizationPolicy shop/a"), "\(error.reason)")
        }
        #expect(try await store.configVersion() == 2)
    }

    @Test("resources list by kind and namespace, sorted by namespace and name")
    func listing() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        let peer = ConfigResourceInput(kind: "PeerAuthentication", namespace: "istio-system", name: "default", yaml: "mtls: STRICT\n")
        _ = try await store.applyConfig(
            [configPolicy("z", namespace: "shop"), configPolicy("a", namespace: "shop"), configPolicy("m", namespace: "istio-system"), peer], at: referenceTime, actor: "admin"
        )
        let policies = try await store.configResources(kind: "AuthorizationPolicy", namespace: nil)
        #expect(policies.map { "\($0.namespace)/\($0.name)" } == ["istio-system/m", "shop/a", "shop/z"])
        #expect(try await store.configResources(kind: "AuthorizationPolicy", namespace: "shop").map(\.name) == ["a", "z"])
        #expect(try await store.configResources(kind: nil, namespace: "istio-system").map(\.kind) == ["AuthorizationPolicy", "PeerAuthentication"])
        #expect(try await store.configResources(kind: "RequestAuthentication", namespace: nil).isEmpty)
        let snapshot = try await store.configSnapshot()
        #expect(snapshot.version == 1)
        #expect(snapshot.resources.count == 4)
    }

    @Test("each change is audited in the chain, which still verifies")
    func auditEvents() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let store = try directory.open()
        _ = try await store.applyConfig([configPolicy("a"), configPolicy("b")], at: referenceTime, actor: "admin")
        _ = try await store.applyConfig([configPolicy("a"), configPolicy("b", action: "DENY")], at: referenceTime.addingTimeInterval(1), actor: "admin")
        _ = try await store.deleteConfig(ConfigResourceKey(kind: "AuthorizationPolicy", namespace: "shop", name: "a"), at: referenceTime.addingTimeInterval(2), actor: "ops")
        let events = try await store.events()
        #expect(events.map(\.eventType) == ["config.applied", "config.applied", "config.applied", "config.deleted"])
        #expect(events.map(\.subject) == ["AuthorizationPolicy shop/a", "AuthorizationPolicy shop/b", "AuthorizationPolicy shop/b", "AuthorizationPolicy shop/a"])
        #expect(events[2].details.contains("\"change\":\"configured\""), "\(events[2].details)")
        #expect(events[2].details.contains("\"version\":\"2\""), "\(events[2].details)")
        #expect(events[3].actor == "ops")
        #expect(try await store.verifyAuditChain() == .intact(events: 4))
    }

    @Test("applies racing from two connections are serialized: every change lands and each bumps the version once")
    func racingWriters() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let first = try directory.open()
        let second = try directory.open()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<20 {
                let store = index.isMultiple(of: 2) ? first : second
                group.addTask { _ = try await store.applyConfig([configPolicy("p\(index)")], at: referenceTime, actor: "admin") }
            }
            try await group.waitForAll()
        }
        #expect(try await first.configVersion() == 20)
        #expect(try await second.configResources(kind: nil, namespace: nil).count == 20)
        #expect(try await first.verifyAuditChain() == .intact(events: 20))
    }

    @Test("a change made through another connection is seen at once: the version is shared through the file")
    func otherWriterIsSeen() async throws {
        let directory = try StoreDirectory()
        defer { directory.remove() }
        let reader = try directory.open()
        let writer = try directory.open()
        #expect(try await reader.configVersion() == 0)
        _ = try await writer.applyConfig([configPolicy("a")], at: referenceTime, actor: "admin")
        #expect(try await reader.configVersion() == 1)
        #expect(try await reader.configSnapshot().resources.map(\.name) == ["a"])
    }
}
