import Foundation
import Testing

/// `rampart apply`, `get` and `delete` as an operator runs them, against a real state directory.
@Suite("config commands")
struct ConfigCommandTests {
    static var policies: String { Paths.packageRoot.appendingPathComponent("policies").path }

    /// Every resource in policies/, as `namespace/name` per kind, read from the files.
    static func exampleResources() throws -> [String] {
        var found: [String] = []
        let files = try FileManager.default.contentsOfDirectory(atPath: policies).filter { $0.hasSuffix(".yaml") }
        for file in files {
            let text = try String(contentsOfFile: "\(policies)/\(file)", encoding: .utf8)
            found += text.components(separatedBy: "\n").filter { $0.hasPrefix("kind: ") }.map { String($0.dropFirst(6)) }
        }
        return found
    }

    @Test("apply stores policies/, get shows them as a table, JSON and YAML, and re-applying changes nothing")
    func applyGetReapply() throws {
        let ca = try CAProcess(label: "config-apply")
        let applied = try rampart("apply", "-f", Self.policies, "--state", ca.state)
        #expect(applied.succeeded, "\(applied.stdout)\(applied.stderr)")
        let lines = applied.stdout.split(separator: "\n").map(String.init)
        let expected = try Self.exampleResources()
        #expect(lines.filter { $0.hasSuffix(" created") }.count == expected.count, "\(applied.stdout)")
        #expect(lines.contains("authorizationpolicy.security.istio.io shop/allow-nothing created"))
        #expect(lines.contains("peerauthentication.security.istio.io istio-system/default created"), "\(applied.stdout)")
        #expect(lines.last == "config version 1")

        let table = try rampart("get", "authorizationpolicies", "-A", "--state", ca.state)
        #expect(table.succeeded, "\(table.stderr)")
        let rows = table.stdout.split(separator: "\n").map(String.init)
        #expect(rows.first?.split(separator: " ", omittingEmptySubsequences: true) == ["NAMESPACE", "NAME", "ACTION", "GENERATION", "AGE"])
        let row = try #require(rows.first { $0.contains("cart-from-frontend") })
        #expect(row.split(separator: " ", omittingEmptySubsequences: true).prefix(4) == ["shop", "cart-from-frontend", "ALLOW", "1"])
        #expect(rows.count - 1 == expected.filter { $0 == "AuthorizationPolicy" }.count)

        let json = try rampart("get", "ap", "-n", "shop", "--json", "--state", ca.state)
        #expect(json.succeeded, "\(json.stderr)")
        let items = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(items.allSatisfy { $0["namespace"] as? String == "shop" && $0["kind"] as? String == "AuthorizationPolicy" })
        let allowNothing = try #require(items.first { $0["name"] as? String == "allow-nothing" })
        #expect(allowNothing["generation"] as? Int == 1)

        // -o yaml gives back the document as written, comments included, and nothing of its
        // neighbour, with the store's creation time and generation in its metadata as kubectl prints them.
        let yaml = try rampart("get", "AuthorizationPolicy", "allow-nothing", "-n", "shop", "-o", "yaml", "--state", ca.state)
        #expect(yaml.succeeded, "\(yaml.stderr)")
        #expect(yaml.stdout.hasPrefix("# Default deny for one namespace"), "\(yaml.stdout)")
        #expect(yaml.stdout.hasSuffix("spec: {}\n"), "\(yaml.stdout)")
        #expect(allowNothing["yaml"] as? String == withoutStoreFields(yaml.stdout))
        #expect(yaml.stdout.contains("\n  creationTimestamp: \"\(allowNothing["created_at"] as? String ?? "?")\"\n  generation: 1\n"), "\(yaml.stdout)")
        // kubectl's joined short options: -nNS, -oyaml.
        let joined = try rampart("get", "ap", "allow-nothing", "-nshop", "-oyaml", "--state", ca.state)
        #expect(joined.succeeded && joined.stdout == yaml.stdout, "\(joined.stdout)\(joined.stderr)")

        // -o json prints the resources as kubectl does: one named resource as itself, a listing as
        // a List, with the namespace and generation in metadata.
        let object = try rampart("get", "ap", "allow-nothing", "-n", "shop", "-o", "json", "--state", ca.state)
        let resource = try #require(try JSONSerialization.jsonObject(with: Data(object.stdout.utf8)) as? [String: Any], "\(object.stderr)")
        #expect(resource["kind"] as? String == "AuthorizationPolicy" && resource["apiVersion"] as? String == "security.istio.io/v1")
        let metadata = try #require(resource["metadata"] as? [String: Any])
        #expect(metadata["name"] as? String == "allow-nothing" && metadata["namespace"] as? String == "shop")
        #expect(metadata["generation"] as? Int == 1 && metadata["creationTimestamp"] is String)
        #expect(resource["spec"] as? [String: Any] != nil)
        let list = try rampart("get", "ap", "-n", "shop", "-ojson", "--state", ca.state)
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any], "\(list.stderr)")
        #expect(listed["kind"] as? String == "List" && (listed["items"] as? [Any])?.count == items.count)
        // -A wins over -n, as in kubectl.
        let everywhere = try rampart("get", "ap", "-n", "nowhere", "-A", "-o", "name", "--state", ca.state)
        #expect(everywhere.succeeded && everywhere.stdout.contains("/allow-nothing"), "\(everywhere.stdout)\(everywhere.stderr)")
        let both = try rampart("get", "ap", "-n", "shop", "--json", "-o", "yaml", "--state", ca.state)
        #expect(!both.succeeded && both.stderr.contains("not both"), "\(both.stderr)")

        let peer = try rampart("get", "pa", "-n", "istio-system", "-o", "name", "--state", ca.state)
        #expect(peer.stdout == "peerauthentication.security.istio.io/default\n", "\(peer.stdout)\(peer.stderr)")
        let none = try rampart("get", "ra", "--state", ca.state)
        #expect(none.succeeded)
        #expect(none.stderr.contains("No resources found in default namespace."))

        let again = try rampart("apply", "-f", Self.policies, "--state", ca.state)
        #expect(again.succeeded, "\(again.stderr)")
        let againLines = again.stdout.split(separator: "\n").map(String.init)
        #expect(againLines.dropLast().allSatisfy { $0.hasSuffix(" unchanged") }, "\(again.stdout)")
        #expect(againLines.last == "config version 1 (nothing changed)")
    }

    @Test("apply --dry-run prints what apply would do and stores nothing")
    func dryRun() throws {
        let ca = try CAProcess(label: "config-dry-run")
        let preview = try rampart("apply", "-f", Self.policies, "--dry-run", "--state", ca.state)
        #expect(preview.succeeded, "\(preview.stdout)\(preview.stderr)")
        let lines = preview.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("authorizationpolicy.security.istio.io shop/allow-nothing created (dry run)"), "\(preview.stdout)")
        #expect(lines.dropLast().allSatisfy { $0.hasSuffix(" created (dry run)") }, "\(preview.stdout)")
        #expect(lines.last == "config version would be 1 (dry run: nothing was stored)")
        let none = try rampart("get", "ap", "-A", "--state", ca.state)
        #expect(none.succeeded && none.stdout.isEmpty, "\(none.stdout)")

        #expect(try rampart("apply", "-f", Self.policies, "--state", ca.state).succeeded)
        let same = try rampart("apply", "-f", Self.policies, "--dry-run", "--state", ca.state)
        #expect(same.stdout.split(separator: "\n").last == "config version 1 (dry run: nothing would change)", "\(same.stdout)")

        let broken = "\(ca.directory)/broken.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: broken, namespace: shop}
            spec: {action: PERMIT}
            """.write(toFile: broken, atomically: true, encoding: .utf8)
        let refused = try rampart("apply", "-f", broken, "--dry-run", "--state", ca.state)
        #expect(!refused.succeeded)
        #expect(refused.stderr.contains("broken.yaml:4"), "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing was stored"), "\(refused.stderr)")
    }

    @Test("get and delete take kubectl's forms: KIND,KIND, KIND NAME..., and KIND/NAME as get -o name prints it")
    func kubectlForms() throws {
        let ca = try CAProcess(label: "config-kubectl-forms")
        #expect(try rampart("apply", "-f", Self.policies, "--state", ca.state).succeeded)
        let both = try rampart("get", "ap,pa", "-A", "--state", ca.state)
        #expect(both.succeeded, "\(both.stderr)")
        let headers = both.stdout.split(separator: "\n").filter { $0.hasPrefix("NAMESPACE") }
        #expect(headers.map { $0.split(separator: " ", omittingEmptySubsequences: true) } == [
            ["NAMESPACE", "NAME", "ACTION", "GENERATION", "AGE"], ["NAMESPACE", "NAME", "MODE", "GENERATION", "AGE"],
        ], "\(both.stdout)")
        #expect(both.stdout.contains("peerauthentication.security.istio.io/default"), "\(both.stdout)")

        let one = try rampart("get", "ap", "-n", "shop", "--state", ca.state).stdout
        #expect(one.split(separator: "\n").first?.split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "ACTION", "GENERATION", "AGE"], "\(one)")
        let denyRow = one.split(separator: "\n").first { $0.hasPrefix("deny-delete-trial ") }
        #expect(denyRow?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == "DENY", "\(one)")

        let names = try rampart("get", "ap", "-n", "shop", "-o", "name", "--state", ca.state).stdout
            .split(separator: "\n").map(String.init)
        #expect(names.contains("authorizationpolicy.security.istio.io/allow-nothing"), "\(names)")
        let again = try run(Paths.rampart, ["get"] + names + ["-n", "shop", "-o", "name", "--state", ca.state])
        #expect(again.stdout.split(separator: "\n").map(String.init) == names, "\(again.stderr)")

        // Istio's CRD categories stand for every kind; a kind may carry its version and group.
        let category = try rampart("get", "istio-io", "-A", "-o", "name", "--state", ca.state)
        #expect(category.stdout.contains("authorizationpolicy.security.istio.io/") && category.stdout.contains("peerauthentication.security.istio.io/"), "\(category.stdout)")
        let versioned = try rampart("get", "authorizationpolicies.v1.security.istio.io", "-n", "shop", "-o", "name", "--state", ca.state)
        #expect(versioned.stdout.split(separator: "\n").map(String.init) == names, "\(versioned.stdout)\(versioned.stderr)")
        // Nothing to list in YAML is an empty List, as kubectl prints it.
        let empty = try rampart("get", "ra", "-n", "shop", "-o", "yaml", "--state", ca.state)
        #expect(empty.succeeded && empty.stdout.contains("kind: List") && empty.stdout.contains("items: []"), "\(empty.stdout)")

        let partly = try rampart("get", "ap", "allow-nothing", "nope", "-n", "shop", "--state", ca.state)
        #expect(!partly.succeeded && partly.stdout.contains("allow-nothing") && partly.stderr.contains("shop/nope not found"), "\(partly.stdout)\(partly.stderr)")
        let mixed = try rampart("get", "ap/allow-nothing", "pa", "--state", ca.state)
        #expect(!mixed.succeeded && mixed.stderr.contains("not both"), "\(mixed.stderr)")

        let deleted = try run(Paths.rampart, ["delete"] + names + ["-n", "shop", "--state", ca.state])
        #expect(deleted.succeeded, "\(deleted.stderr)")
        #expect(deleted.stdout.split(separator: "\n").filter { $0.hasSuffix(" deleted") }.count == names.count, "\(deleted.stdout)")
        #expect(deleted.stdout.hasSuffix("config version 2\n"), "\(deleted.stdout)")
        let several = try rampart("delete", "pa", "default", "default", "-n", "payments", "--state", ca.state)
        #expect(several.succeeded, "\(several.stderr)")
    }

    @Test("apply warns when a PeerAuthentication competes with one already stored, as it would within one batch")
    func conflictWithStored() throws {
        let ca = try CAProcess(label: "config-stored-conflict")
        func peer(_ name: String, _ mode: String) throws -> String {
            let file = "\(ca.directory)/\(name).yaml"
            try "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: \(name), namespace: istio-system}\nspec: {mtls: {mode: \(mode)}}\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            return file
        }
        let first = try rampart("apply", "-f", try peer("a", "STRICT"), "--state", ca.state)
        #expect(first.succeeded && !first.stderr.contains("RP063"), "\(first.stderr)")
        let second = try rampart("apply", "-f", try peer("b", "PERMISSIVE"), "--state", ca.state)
        #expect(second.succeeded, "\(second.stderr)")
        #expect(second.stderr.contains("warning RP063") && second.stderr.contains("istio-system/a (stored)"), "\(second.stderr)")
        // A later one whose name sorts first is still the one ignored: the store dates each, and the
        // oldest wins. Dates are kept to the second, as Kubernetes keeps them (within one second,
        // the name decides), so the third comes a second later.
        Thread.sleep(forTimeInterval: 1.1)
        let third = try rampart("apply", "-f", try peer("0-disable", "DISABLE"), "--state", ca.state)
        let warning = third.stderr.split(separator: "\n").first { $0.contains("PeerAuthentication istio-system/0-disable") } ?? ""
        #expect(warning.contains("RP063") && warning.contains("this one is ignored"), "\(third.stderr)")
    }

    @Test("delete -f removes what the files define in one version bump; a missing one is an error unless ignored")
    func deleteFromFiles() throws {
        let ca = try CAProcess(label: "config-delete-f")
        #expect(try rampart("apply", "-f", Self.policies, "--state", ca.state).succeeded)
        let file = "\(Self.policies)/allow-nothing.yaml"
        let deleted = try rampart("delete", "-f", file, "--state", ca.state)
        #expect(deleted.succeeded, "\(deleted.stdout)\(deleted.stderr)")
        #expect(deleted.stdout.contains("authorizationpolicy.security.istio.io shop/allow-nothing deleted"), "\(deleted.stdout)")
        #expect(deleted.stdout.split(separator: "\n").last == "config version 2", "\(deleted.stdout)")
        let gone = try rampart("get", "ap", "allow-nothing", "-n", "shop", "--state", ca.state)
        #expect(!gone.succeeded)

        let again = try rampart("delete", "-f", file, "--state", ca.state)
        #expect(!again.succeeded)
        #expect(again.stderr.contains("shop/allow-nothing not found"), "\(again.stderr)")
        #expect(try rampart("delete", "-f", file, "--ignore-not-found", "--state", ca.state).succeeded)

        let byName = try rampart("delete", "pa", "default", "-n", "istio-system", "--state", ca.state)
        #expect(byName.succeeded, "\(byName.stderr)")
        #expect(byName.stdout == "peerauthentication.security.istio.io istio-system/default deleted\nconfig version 3\n", "\(byName.stdout)")
        let missing = try rampart("delete", "pa", "default", "-n", "istio-system", "--state", ca.state)
        #expect(!missing.succeeded)
        #expect(missing.stderr.contains("istio-system/default not found") && missing.stderr.contains("rampart get pa -n istio-system"), "\(missing.stderr)")

        // As kubectl: -n is the namespace of documents that name none, and refuses documents naming another.
        let unnamed = "\(ca.directory)/unnamed.yaml"
        try "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: plain}\nspec: {}\n"
            .write(toFile: unnamed, atomically: true, encoding: .utf8)
        #expect(try rampart("apply", "-f", unnamed, "--state", ca.state).succeeded)
        let elsewhere = try rampart("delete", "-f", unnamed, "-n", "shop", "--state", ca.state)
        #expect(!elsewhere.succeeded && elsewhere.stderr.contains("shop/plain not found"), "\(elsewhere.stderr)")
        #expect(try rampart("get", "ap", "plain", "--state", ca.state).succeeded)
        let mismatch = try rampart("delete", "-f", "\(Self.policies)/namespace-isolation.yaml", "-n", "default", "--state", ca.state)
        #expect(!mismatch.succeeded && mismatch.stderr.contains("not default as -n says"), "\(mismatch.stderr)")
        #expect(mismatch.stderr.contains("nothing was deleted"), "\(mismatch.stderr)")
        #expect(try rampart("delete", "-f", unnamed, "-n", "default", "--state", ca.state).succeeded)

        let both = try rampart("delete", "ap", "x", "-f", file, "--state", ca.state)
        #expect(!both.succeeded && both.stderr.contains("either KIND NAME... or -f FILE"), "\(both.stderr)")
        let neither = try rampart("delete", "--state", ca.state)
        #expect(!neither.succeeded && neither.stderr.contains("say what to delete"), "\(neither.stderr)")
    }

    @Test("a changed document is configured at the next generation and bumps the version")
    func configure() throws {
        let ca = try CAProcess(label: "config-configure")
        let file = "\(ca.directory)/deny.yaml"
        try Self.write(file, action: "DENY", paths: "[/admin]")
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        try Self.write(file, action: "DENY", paths: "[/admin, /debug]")
        let changed = try rampart("apply", "-f", file, "--state", ca.state)
        #expect(changed.stdout == "authorizationpolicy.security.istio.io shop/deny-admin configured\nconfig version 2\n", "\(changed.stdout)\(changed.stderr)")
        let json = try rampart("get", "ap", "deny-admin", "-n", "shop", "--json", "--state", ca.state)
        let items = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(items.first?["generation"] as? Int == 2)
        #expect((items.first?["yaml"] as? String)?.contains("/debug") == true)
        let audit = try rampart("audit", "verify", "--state", ca.state)
        #expect(audit.succeeded, "\(audit.stdout)")
    }

    @Test("a batch with one invalid resource stores nothing and names the file, line, field and fix")
    func invalidBatch() throws {
        let ca = try CAProcess(label: "config-invalid")
        let folder = "\(ca.directory)/batch"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Self.write("\(folder)/a-good.yaml", action: "DENY", paths: "[/admin]")
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: api, namespace: shop}
            spec:
              action: ALLOW
              rules:
              - to: [{operation: {methods: [GET], pathz: [/a]}}]
            """.write(toFile: "\(folder)/b-bad.yaml", atomically: true, encoding: .utf8)
        let result = try rampart("apply", "-f", folder, "--state", ca.state)
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(folder)/b-bad.yaml:7:"), "\(result.stderr)")
        #expect(result.stderr.contains("AuthorizationPolicy shop/api"))
        #expect(result.stderr.contains("spec.rules[0].to[0].operation.pathz"))
        #expect(result.stderr.contains("fix:"))
        #expect(result.stderr.contains("nothing was stored"))
        // One finding, counted once: the invalid resource's document is not also reported as cut wrongly.
        #expect(result.stderr.contains("1 error in"), "\(result.stderr)")
        #expect(!result.stderr.contains("does not read back"), "\(result.stderr)")
        #expect(result.stdout.isEmpty, "\(result.stdout)")

        let stored = try rampart("get", "ap", "-A", "--json", "--state", ca.state)
        #expect(stored.succeeded)
        #expect(stored.trimmedOutput == "[\n\n]" || stored.trimmedOutput == "[]", "\(stored.stdout)")

        // With -n, a document without metadata is refused for that alone, not also for how it reads
        // without -n's namespace.
        let nameless = "\(ca.directory)/nameless.yaml"
        try "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nspec: {}\n".write(toFile: nameless, atomically: true, encoding: .utf8)
        let unnamed = try rampart("apply", "-f", nameless, "-n", "shop", "--state", ca.state)
        #expect(unnamed.status == 1 && unnamed.stderr.contains("RP008"), "\(unnamed.stderr)")
        #expect(unnamed.stderr.contains("1 error in") && !unnamed.stderr.contains("does not read back"), "\(unnamed.stderr)")

        let twice = "\(ca.directory)/twice.yaml"
        let doc = try String(contentsOfFile: "\(folder)/a-good.yaml", encoding: .utf8)
        try (doc + "---\n" + doc).write(toFile: twice, atomically: true, encoding: .utf8)
        let duplicate = try rampart("apply", "-f", twice, "--state", ca.state)
        #expect(duplicate.status == 1)
        #expect(duplicate.stderr.contains("defined again"), "\(duplicate.stderr)")

        // A List holding the bad resource is refused as a whole, its item's finding at the List's line.
        let list = "\(ca.directory)/list.yaml"
        let bad = try String(contentsOfFile: "\(folder)/b-bad.yaml", encoding: .utf8)
        func item(_ text: String) -> String {
            "- " + text.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n").dropFirst(2)
        }
        try "apiVersion: v1\nkind: List\nitems:\n\(item(doc))\n\(item(bad))\n".write(toFile: list, atomically: true, encoding: .utf8)
        let refused = try rampart("apply", "-f", list, "--state", ca.state)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("\(list):"), "\(refused.stderr)")
        #expect(refused.stderr.contains("spec.rules[0].to[0].operation.pathz"), "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing was stored"), "\(refused.stderr)")
        let after = try rampart("get", "ap", "-A", "-o", "name", "--state", ca.state)
        #expect(after.stdout.isEmpty, "\(after.stdout)")
        // A List without items says what is missing.
        try "apiVersion: v1\nkind: List\n".write(toFile: list, atomically: true, encoding: .utf8)
        let empty = try rampart("apply", "-f", list, "--state", ca.state)
        #expect(empty.status == 1 && empty.stderr.contains("RP009") && empty.stderr.contains("items"), "\(empty.stderr)")
    }

    @Test("an emptied store file is refused, not taken for a new store; a damaged one is named as such")
    func emptiedStore() throws {
        let ca = try CAProcess(label: "config-emptied")
        let file = "\(ca.directory)/p.yaml"
        try Self.write(file, action: "DENY", paths: "[/admin]")
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        let database = "\(ca.state)/rampart.sqlite"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        #expect(FileManager.default.createFile(atPath: database, contents: Data()))
        let get = try rampart("get", "ap", "-A", "--state", ca.state)
        #expect(get.status != 0 && get.stderr.contains("is empty") && get.stderr.contains("backup"), "\(get.stderr)")
        let apply = try rampart("apply", "-f", file, "--state", ca.state)
        #expect(apply.status != 0 && apply.stderr.contains("is empty"), "\(apply.stderr)")
        #expect((try? FileManager.default.attributesOfItem(atPath: database))?[.size] as? Int == 0)

        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: database))
        let damaged = try rampart("get", "ap", "-A", "--state", ca.state)
        #expect(damaged.status != 0 && damaged.stderr.contains("damaged"), "\(damaged.stderr)")
    }

    @Test("a deleted store file is refused, not replaced by an empty store; damage inside one is found and named")
    func deletedAndDamagedStore() throws {
        let ca = try CAProcess(label: "store-damage")
        let database = "\(ca.state)/rampart.sqlite"
        // Enough audit rows for the file to hold pages beyond its first few.
        for index in 0..<60 {
            let made = try rampart("token", "create", "--state", ca.state, "--spiffe-id", "spiffe://cluster.local/ns/a/sa/s\(index)")
            #expect(made.succeeded, "\(made.stderr)")
        }
        let backup = "\(ca.directory)/backup.sqlite"
        try FileManager.default.copyItem(atPath: database, toPath: backup)

        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        for command in [["cert", "list"], ["audit", "verify"], ["token", "create", "--spiffe-id", "spiffe://cluster.local/ns/a/sa/b"]] {
            let result = try run(Paths.rampart, command + ["--state", ca.state])
            #expect(result.status == 1 && result.stderr.contains("rampart.sqlite is missing") && result.stderr.contains("backup"), "\(command): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: database), "a command made a new, empty store")
        let serve = try run(Paths.rampart, ["ca", "serve", "--state", ca.state, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], timeout: 30)
        #expect(serve.status != 0 && serve.stderr.contains("is missing"), "\(serve.stderr)")

        // One page in the middle of the file overwritten: SQLite's quick_check finds it.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: backup))
        let pages = bytes.count / 4096
        #expect(pages > 8)
        let page = (pages - 3) * 4096
        bytes.replaceSubrange(page..<page + 4096, with: Data(repeating: 0xA5, count: 4096))
        try bytes.write(to: URL(fileURLWithPath: database))
        let verify = try rampart("audit", "verify", "--state", ca.state)
        #expect(verify.status == 1 && (verify.stdout + verify.stderr).contains("damaged"), "\(verify.stdout)\(verify.stderr)")
        #expect(!(verify.stdout + verify.stderr).contains("SQLite error 11"), "\(verify.stderr)")
        let refused = try run(Paths.rampart, ["ca", "serve", "--state", ca.state, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], timeout: 30)
        #expect(refused.status != 0 && refused.stderr.contains("damaged") && refused.stderr.contains("backup"), "\(refused.stderr)")
    }

    @Test("delete removes a resource and bumps the version; a missing one is an error naming it")
    func delete() throws {
        let ca = try CAProcess(label: "config-delete")
        #expect(try rampart("apply", "-f", Self.policies, "--state", ca.state).succeeded)
        let deleted = try rampart("delete", "authorizationpolicy", "allow-nothing", "-n", "shop", "--state", ca.state)
        #expect(deleted.stdout == "authorizationpolicy.security.istio.io shop/allow-nothing deleted\nconfig version 2\n", "\(deleted.stdout)\(deleted.stderr)")
        let names = try rampart("get", "ap", "-n", "shop", "-o", "name", "--state", ca.state).stdout
        #expect(!names.contains("/allow-nothing\n"), "\(names)")
        #expect(names.contains("/cart-from-frontend\n"), "\(names)")

        let missing = try rampart("delete", "ap", "allow-nothing", "-n", "shop", "--state", ca.state)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("authorizationpolicy.security.istio.io shop/allow-nothing not found"), "\(missing.stderr)")
        let badKind = try rampart("delete", "gateway", "x", "--state", ca.state)
        #expect(!badKind.succeeded)
        #expect(badKind.stderr.contains("unknown kind \"gateway\""), "\(badKind.stderr)")
        // delete -f reads kinds and names only: a spec gone wrong does not stop the deletion.
        let edited = "\(ca.directory)/edited.yaml"
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: cart-from-frontend, namespace: shop}
            spec: {action: BOGUS, rulez: 3}
            """.write(toFile: edited, atomically: true, encoding: .utf8)
        let byFile = try rampart("delete", "-f", edited, "--state", ca.state)
        #expect(byFile.succeeded, "\(byFile.stdout)\(byFile.stderr)")
        #expect(byFile.stdout.contains("shop/cart-from-frontend deleted"), "\(byFile.stdout)")
        let events = try rampart("audit", "list", "--state", ca.state).stdout
        #expect(events.contains("config.deleted"))
        #expect(try rampart("audit", "verify", "--state", ca.state).succeeded)
    }

    @Test("a running ca serve picks up an apply without a restart, seen on /metrics")
    func servePicksUpApply() throws {
        let ca = try CAProcess(label: "config-serve")
        try ca.start()
        defer { ca.stop() }
        #expect(try Self.waitForMetric("rampart_config_version", equalTo: 0, adminPort: ca.adminPort), "\(ca.log)")

        let applied = try rampart("apply", "-f", Self.policies, "--state", ca.state)
        #expect(applied.succeeded, "\(applied.stderr)")
        #expect(try Self.waitForMetric("rampart_config_version", equalTo: 1, adminPort: ca.adminPort), "\(ca.log)")
        let count = Double(try Self.exampleResources().filter { $0 == "AuthorizationPolicy" }.count)
        #expect(try Self.waitForMetric("rampart_config_resources{kind=\"AuthorizationPolicy\"}", equalTo: count, adminPort: ca.adminPort))

        #expect(try rampart("delete", "ap", "allow-nothing", "-n", "shop", "--state", ca.state).succeeded)
        #expect(try Self.waitForMetric("rampart_config_version", equalTo: 2, adminPort: ca.adminPort), "\(ca.log)")
        #expect(try Self.waitForMetric("rampart_config_resources{kind=\"AuthorizationPolicy\"}", equalTo: count - 1, adminPort: ca.adminPort))
        #expect(ca.log.contains("config changed"), "\(ca.log)")
    }

    @Test("each document is stored as written whatever the layout: markers with content, document ends, CRLF line ends and a byte-order mark")
    func documentLayouts() throws {
        let ca = try CAProcess(label: "config-layouts")
        let file = "\(ca.directory)/layouts.yaml"
        try """
            # a header comment, not a resource
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: one, namespace: shop}
            spec: {action: DENY, rules: [{to: [{operation: {ports: ["8080"], paths: [/a]}}]}]}
            ...
            --- {apiVersion: security.istio.io/v1, kind: PeerAuthentication, metadata: {name: default, namespace: shop}, spec: {mtls: {mode: STRICT}}}
            ---   # a comment on the marker

            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata:
              name: jwt
              namespace: shop
            spec:
              jwtRules:
              - issuer: https://issuer.example.com
                jwksUri: https://issuer.example.com/jwks.json
            ---
            # trailing comment only

            """.write(toFile: file, atomically: true, encoding: .utf8)
        let crlf = "\(ca.directory)/crlf.yaml"
        // Saved on Windows: a byte-order mark, CRLF line ends, two documents.
        try "\u{FEFF}apiVersion: security.istio.io/v1\r\nkind: AuthorizationPolicy\r\nmetadata: {name: two, namespace: shop}\r\nspec: {}\r\n---\r\napiVersion: security.istio.io/v1\r\nkind: AuthorizationPolicy\r\nmetadata: {name: three, namespace: shop}\r\nspec: {}\r\n"
            .write(toFile: crlf, atomically: true, encoding: .utf8)
        let applied = try rampart("apply", "-f", file, "-f", crlf, "--state", ca.state)
        #expect(applied.succeeded, "\(applied.stdout)\(applied.stderr)")
        #expect(applied.stdout.components(separatedBy: " created\n").count - 1 == 5, "\(applied.stdout)")

        let one = try rampart("get", "ap", "one", "-n", "shop", "-o", "yaml", "--state", ca.state).stdout
        #expect(one.contains("metadata: {creationTimestamp: \"20") && one.contains("\", generation: 1, name: one"), "\(one)")
        #expect(withoutStoreFields(one) == "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: one, namespace: shop}\nspec: {action: DENY, rules: [{to: [{operation: {ports: [\"8080\"], paths: [/a]}}]}]}\n", "\(one)")
        let peer = try rampart("get", "pa", "default", "-n", "shop", "-o", "yaml", "--state", ca.state).stdout
        #expect(peer.hasPrefix("--- {apiVersion: security.istio.io/v1, kind: PeerAuthentication"), "\(peer)")
        let jwt = try rampart("get", "ra", "jwt", "-n", "shop", "-o", "yaml", "--state", ca.state).stdout
        #expect(jwt.hasPrefix("apiVersion: security.istio.io/v1\nkind: RequestAuthentication"), "\(jwt)")
        #expect(jwt.hasSuffix("jwksUri: https://issuer.example.com/jwks.json\n"), "\(jwt)")
        let two = try rampart("get", "ap", "two", "-n", "shop", "-o", "yaml", "--state", ca.state).stdout
        // Stored with LF line ends and no mark, so a `get -o yaml` backup applies again anywhere.
        #expect(withoutStoreFields(two) == "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: two, namespace: shop}\nspec: {}\n", "\(two)")

        let again = try rampart("apply", "-f", file, "-f", crlf, "--state", ca.state)
        #expect(again.stdout.hasSuffix("config version 1 (nothing changed)\n"), "\(again.stdout)")

        // A backup of every kind applies again to a new store: no empty document between a
        // separator and a document stored with its own marker.
        var backup = ""
        for kind in ["ap", "pa", "ra"] {
            let listed = try rampart("get", kind, "-A", "-o", "yaml", "--state", ca.state)
            backup += (backup.isEmpty || listed.stdout.hasPrefix("---") ? "" : "---\n") + listed.stdout
        }
        #expect(!backup.contains("---\n---"), "\(backup)")
        let restored = try CAProcess(label: "config-layouts-restore")
        let copy = "\(restored.directory)/backup.yaml"
        try backup.write(toFile: copy, atomically: true, encoding: .utf8)
        let reapplied = try rampart("apply", "-f", copy, "--state", restored.state)
        #expect(reapplied.succeeded, "\(reapplied.stderr)")
        #expect(reapplied.stdout.components(separatedBy: " created\n").count - 1 == 5, "\(reapplied.stdout)")

        // The audit log names who initialized the CA, made a token and applied: admin and the
        // user running rampart.
        #expect(try rampart("token", "create", "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/web", "--state", ca.state).succeeded)
        let audit = try rampart("audit", "list", "--state", ca.state).stdout
        let events = audit.split(separator: "\n").filter {
            $0.contains("config.applied") || $0.contains("ca.initialized") || $0.contains("token.created")
        }
        #expect(events.count >= 3 && events.allSatisfy { $0.split(separator: "\t").dropFirst(3).first?.hasPrefix("admin:") == true }, "\(audit)")
    }

    /// Polls the admin /metrics until the sample equals `value`, for at most `timeout` seconds.
    static func waitForMetric(_ sample: String, equalTo value: Double, adminPort: Int, timeout: TimeInterval = 15) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let metrics = try run("curl", ["-s", "http://127.0.0.1:\(adminPort)/metrics"], timeout: 10).stdout
            let line = metrics.split(separator: "\n").first { $0.hasPrefix(sample + " ") }
            if let line, Double(line.dropFirst(sample.count + 1)) == value { return true }
            usleep(200_000)
        }
        return false
    }

    @Test("a document that says the same in other words (comments, key order, layout) is unchanged")
    func sameContent() throws {
        let ca = try CAProcess(label: "config-same")
        let file = "\(ca.directory)/p.yaml"
        try Self.write(file, action: "DENY", paths: "[/admin]")
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        try """
            # the same policy, written another way
            kind: AuthorizationPolicy
            apiVersion: "security.istio.io/v1"
            metadata:
              namespace: shop
              name: deny-admin
            spec:
              rules:
              - to:
                - operation:
                    paths: ["/admin"]
                    ports: ["8080"]
              action: DENY
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let same = try rampart("apply", "-f", file, "--state", ca.state)
        #expect(same.stdout == "authorizationpolicy.security.istio.io shop/deny-admin unchanged\nconfig version 1 (nothing changed)\n", "\(same.stdout)\(same.stderr)")
        // Another path is another policy: configured.
        try Self.write(file, action: "DENY", paths: "[/admin, /debug]")
        let changed = try rampart("apply", "-f", file, "--state", ca.state)
        #expect(changed.stdout.contains("configured") && changed.stdout.contains("config version 2"), "\(changed.stdout)")
    }

    static func write(_ file: String, action: String, paths: String) throws {
        try """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: deny-admin, namespace: shop}
            spec:
              action: \(action)
              rules:
              - to: [{operation: {ports: ["8080"], paths: \(paths)}}]

            """.write(toFile: file, atomically: true, encoding: .utf8)
    }
}

/// `rampart apply -f -`, as in `kubectl apply -f -`.
@Suite("config commands: standard input")
struct ConfigStandardInputTests {
    @Test("apply -f - stores resources read from standard input; an invalid one names <stdin>:line and stores nothing")
    func applyFromStandardInput() throws {
        let ca = try CAProcess(label: "config-stdin")
        let good = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: from-stdin, namespace: shop}
            spec:
              rules: [{}]
            """
        let applied = try run(Paths.rampart, ["apply", "-f", "-", "--state", ca.state], input: good)
        #expect(applied.succeeded, "\(applied.stdout)\(applied.stderr)")
        #expect(applied.stdout.contains("authorizationpolicy.security.istio.io shop/from-stdin created"))
        let yaml = try rampart("get", "ap", "from-stdin", "-n", "shop", "-o", "yaml", "--state", ca.state)
        #expect(yaml.stdout.contains("name: from-stdin"), "\(yaml.stdout)\(yaml.stderr)")

        let bad = good.replacingOccurrences(of: "from-stdin", with: "bad-one").replacingOccurrences(of: "rules: [{}]", with: "action: DENYY")
        let refused = try run(Paths.rampart, ["apply", "-f", "-", "--state", ca.state], input: bad)
        #expect(!refused.succeeded)
        #expect(refused.stderr.contains("<stdin>:5:"), "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing was stored"))
        let listed = try rampart("get", "ap", "-n", "shop", "-o", "name", "--state", ca.state)
        #expect(!listed.stdout.contains("bad-one"))

        let empty = try run(Paths.rampart, ["apply", "-f", "-", "--state", ca.state], input: "")
        #expect(!empty.succeeded)
        #expect(empty.stderr.contains("standard input was empty"), "\(empty.stderr)")
    }
}
