import Foundation
import RampartControlPlane
import RampartPolicy
import RampartStore
import Testing

/// The control plane's config watcher, in process, on a real store file.
@Suite("config watcher")
struct ConfigWatcherTests {
    static func document(_ name: String, namespace: String = "shop", action: String = "DENY") -> ConfigResourceInput {
        ConfigResourceInput(
            kind: "AuthorizationPolicy", namespace: namespace, name: name,
            yaml: """
                apiVersion: security.istio.io/v1
                kind: AuthorizationPolicy
                metadata: {name: \(name), namespace: \(namespace)}
                spec:
                  action: \(action)
                  rules: [{to: [{operation: {ports: ["8080"], paths: [/admin]}}]}]

                """
        )
    }

    @Test("publishes the store's state, then each new version to every watcher, and leaves invalid resources out")
    func publishesChanges() async throws {
        let directory = try Paths.temporaryDirectory("config-watcher")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteStore(path: "\(directory)/rampart.sqlite")
        let watcher = ConfigWatcher(store: store)
        var updates = watcher.updates.updates().makeAsyncIterator()

        #expect(await watcher.poll(after: nil) == 0)
        let empty = try #require(await updates.next())
        #expect(empty.version == 0)
        #expect(empty.compiledCount == 0)

        // The store keeps what it is given; the watcher must refuse what does not validate.
        let invalid = ConfigResourceInput(kind: "AuthorizationPolicy", namespace: "shop", name: "broken", yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: broken, namespace: shop}\nspec: {action: MAYBE}\n")
        let mislabelled = ConfigResourceInput(kind: "AuthorizationPolicy", namespace: "shop", name: "other", yaml: Self.document("not-other").yaml)
        _ = try await store.applyConfig([Self.document("deny-admin"), invalid, mislabelled], at: Date(), actor: "test")

        #expect(await watcher.poll(after: 0) == 1)
        let state = try #require(await updates.next())
        #expect(state.version == 1)
        #expect(state.storedCounts == ["AuthorizationPolicy": 3])
        #expect(state.compiledCount == 1)
        #expect(Set(state.excluded.keys.map(\.name)) == ["broken", "other"])
        #expect(state.excluded[ConfigResourceKey(kind: "AuthorizationPolicy", namespace: "shop", name: "broken")]?.contains("spec.action") == true)

        // The compiled snapshot enforces the valid policy.
        let request = try AuthzRequest(text: """
            protocol: HTTP
            source: {principal: cluster.local/ns/shop/sa/web}
            destination: {namespace: shop, labels: {app: cart}, port: 8080}
            method: GET
            host: cart
            path: /admin
            """)
        #expect(state.snapshot.evaluate(request).policy == "shop/deny-admin")

        // No new version: nothing is published.
        #expect(await watcher.poll(after: 1) == 1)
        #expect(watcher.updates.current?.version == 1)

        // A late watcher gets the current state first.
        var late = watcher.updates.updates().makeAsyncIterator()
        #expect(await late.next()?.version == 1)

        watcher.updates.finish()
        #expect(await updates.next() == nil)
        #expect(watcher.updates.watcherCount == 0)
    }
}
