import Foundation
import Testing

/// `delete` and `get` in the forms kubectl reads that name several resources at once.
@Suite("config commands: several resources at once")
struct ConfigBulkCommandTests {
    @Test("KIND,KIND NAME names that resource of each kind, delete KIND --all empties the kind in one namespace, and delete -f - reads standard input, as kubectl does")
    func multiKindNamesAndDeleteAll() throws {
        let ca = try CAProcess(label: "config-delete-all")
        let file = "\(ca.directory)/same.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: same, namespace: shop}
            spec: {}
            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: same, namespace: shop}
            spec: {mtls: {mode: STRICT}}
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: other, namespace: shop}
            spec: {}
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: kept, namespace: default}
            spec: {}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        let both = try rampart("get", "ap,pa", "same", "-n", "shop", "-o", "name", "--state", ca.state)
        #expect(both.stdout == "authorizationpolicy.security.istio.io/same\npeerauthentication.security.istio.io/same\n", "\(both.stdout)\(both.stderr)")
        let deleted = try rampart("delete", "ap,pa", "same", "-n", "shop", "--state", ca.state)
        #expect(deleted.succeeded && deleted.stdout.hasSuffix("config version 2\n"), "\(deleted.stdout)\(deleted.stderr)")
        let all = try rampart("delete", "ap", "--all", "-n", "shop", "--state", ca.state)
        #expect(all.succeeded && all.stdout == "authorizationpolicy.security.istio.io shop/other deleted\nconfig version 3\n", "\(all.stdout)\(all.stderr)")
        let none = try rampart("delete", "ap", "--all", "-n", "shop", "--state", ca.state)
        #expect(none.succeeded && none.stdout.contains("No resources found in shop namespace."), "\(none.stdout)")
        // Other namespaces keep theirs, and the log accounts for every deletion.
        #expect(try rampart("get", "ap", "kept", "--state", ca.state).succeeded)
        // What standard input defines, as kubectl's `delete -f -` reads it.
        let piped = try run(
            Paths.rampart, ["delete", "-f", "-", "--state", ca.state],
            input: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: kept, namespace: default}\nspec: {}\n")
        #expect(piped.succeeded && piped.stdout.contains("authorizationpolicy.security.istio.io default/kept deleted"), "\(piped.stdout)\(piped.stderr)")
        let refused = try run(Paths.rampart, ["delete", "ap/other", "--all", "--state", ca.state])
        #expect(refused.status == 64 && refused.stderr.contains("--all takes the kind alone"), "\(refused.stderr)")
        #expect(try rampart("audit", "verify", "--state", ca.state).succeeded)
    }
}
