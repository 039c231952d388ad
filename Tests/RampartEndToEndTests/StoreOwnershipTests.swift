import Foundation
import Testing

/// Commands that record something refuse a store that is not the state directory's own, or that
/// SQLite finds damaged: what they would write there could be lost.
@Suite("writing commands: a replaced or damaged store is refused")
struct StoreOwnershipTests {
    static let id = "spiffe://cluster.local/ns/a/sa/b"

    static func stateDirectory(_ label: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-\(label)-\(UUID().uuidString.prefix(8))").path
        #expect(try rampart("ca", "init", "--state", directory).succeeded)
        return directory
    }

    @Test("another CA's store put in place is refused by token create, cert sign and apply, and audit verify says so")
    func replacedStore() throws {
        let own = try Self.stateDirectory("own"), other = try Self.stateDirectory("other")
        defer { for directory in [own, other] { try? FileManager.default.removeItem(atPath: directory) } }
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: "\(own)/rampart.sqlite\(suffix)")
            if FileManager.default.fileExists(atPath: "\(other)/rampart.sqlite\(suffix)") {
                try FileManager.default.copyItem(atPath: "\(other)/rampart.sqlite\(suffix)", toPath: "\(own)/rampart.sqlite\(suffix)")
            }
        }
        let token = try rampart("token", "create", "--state", own, "--spiffe-id", Self.id)
        #expect(token.status == 1 && token.stderr.contains("records other CAs") && token.stdout.isEmpty, "\(token.stderr)")
        let (csr, _) = try OpenSSL.csr(in: own, name: "w")
        let signed = try rampart("cert", "sign", "--state", own, "--csr", csr, "--spiffe-id", Self.id)
        #expect(signed.status == 1 && !signed.stdout.contains("BEGIN CERTIFICATE"), "\(signed.stdout)\(signed.stderr)")
        let policy = "\(own)/p.yaml"
        try "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec: {}\n"
            .write(toFile: policy, atomically: true, encoding: .utf8)
        let applied = try rampart("apply", "-f", policy, "--state", own)
        #expect(applied.status == 1 && applied.stderr.contains("records other CAs"), "\(applied.stdout)\(applied.stderr)")
        let verify = try rampart("audit", "verify", "--state", own)
        #expect(verify.status == 1 && verify.stdout.contains("store not this CA's"), "\(verify.stdout)")
        // The other directory, with its own store, is untouched and works.
        #expect(try rampart("token", "create", "--state", other, "--spiffe-id", Self.id).succeeded)
    }

    @Test("--state naming a file says it is a file, not a directory to initialize")
    func stateIsAFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-state-file-\(UUID().uuidString.prefix(8))").path
        try "not a directory\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        for command in [["cert", "list"], ["get", "ap", "-A"]] {
            let result = try run(Paths.rampart, command + ["--state", file])
            #expect(result.status != 0 && result.stderr.contains("is a file, not a CA state directory") && !result.stderr.contains("ca init --state \(file)"),
                "\(command): \(result.stderr)")
        }
    }

    @Test("a store whose record of its schema was edited is refused in words")
    func editedMigrations() throws {
        let state = try Self.stateDirectory("migrations")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let edit = try run("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM grdb_migrations'); c.commit()", "\(state)/rampart.sqlite"])
        try #require(edit.succeeded, "\(edit.stderr)")
        let list = try rampart("cert", "list", "--state", state)
        #expect(list.status == 1 && list.stderr.contains("grdb_migrations table was edited") && !list.stderr.contains("CREATE TABLE"), "\(list.stderr)")
    }

    /// The SHA-256 of a store's files (the database and its WAL), to show a refusal left them as they were.
    static func fingerprint(_ state: String) throws -> String {
        let files = ["rampart.sqlite", "rampart.sqlite-wal"].map { "\(state)/\($0)" }.filter { FileManager.default.fileExists(atPath: $0) }
        let result = try run("sha256sum", files)
        return result.stdout
    }

    /// Runs a Python sqlite3 script on the state's store, then folds the WAL into the file.
    static func edit(_ state: String, _ statements: String) throws {
        let script = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit(); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()"
        let edit = try run("python3", ["-c", script, "\(state)/rampart.sqlite", statements])
        try #require(edit.succeeded, "\(edit.stderr)")
    }

    @Test("a store whose record of its schema is gone, that a newer rampart wrote, or whose table lost its key is refused, by readers and writers alike, and left byte for byte as it was")
    func changedSchemas() throws {
        let policy = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-schema-\(UUID().uuidString.prefix(8)).yaml").path
        try "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec: {}\n"
            .write(toFile: policy, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: policy) }
        let cases: [(label: String, edit: String, says: String)] = [
            ("unrecorded", "DROP TABLE grdb_migrations;", "grdb_migrations table was removed"),
            ("newer", "INSERT INTO grdb_migrations VALUES ('v9-from-a-newer-rampart');", "written by a newer rampart"),
            (
                "keyless",
                "CREATE TABLE t AS SELECT * FROM config_resources; DROP TABLE config_resources; ALTER TABLE t RENAME TO config_resources;",
                "config_resources has no primary key"
            ),
        ]
        for (label, statements, says) in cases {
            let state = try Self.stateDirectory(label)
            defer { try? FileManager.default.removeItem(atPath: state) }
            try Self.edit(state, statements)
            let before = try Self.fingerprint(state)
            for command in [
                ["cert", "list", "--state", state], ["get", "ap", "-A", "--state", state], ["apply", "-f", policy, "--state", state],
                ["delete", "ap", "p", "-n", "shop", "--state", state], ["token", "create", "--state", state, "--spiffe-id", Self.id],
            ] {
                let result = try run(Paths.rampart, command)
                #expect(result.status == 1 && result.stderr.contains(says) && !result.stderr.contains("Fatal error"), "\(label) \(command[0]): \(result.stderr)")
            }
            #expect(try Self.fingerprint(state) == before, "\(label): the refused store changed")
        }
    }

    @Test("a store with a damaged page is refused by a command that writes, even where it would not read that page")
    func damagedStore() throws {
        let state = try Self.stateDirectory("damaged")
        defer { try? FileManager.default.removeItem(atPath: state) }
        #expect(try rampart("token", "create", "--state", state, "--spiffe-id", Self.id).succeeded)
        // The config table's root page overwritten, after the log is folded into the file.
        let damage = try run("python3", ["-c", """
            import sqlite3, sys
            path = sys.argv[1]
            c = sqlite3.connect(path)
            c.execute('PRAGMA wal_checkpoint(TRUNCATE)')
            page = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'config_resources'").fetchone()[0]
            size = c.execute('PRAGMA page_size').fetchone()[0]
            c.close()
            with open(path, 'r+b') as f:
                f.seek((page - 1) * size)
                f.write(bytes([0x0d]) + b'\\xff' * 64)
            """, "\(state)/rampart.sqlite"])
        try #require(damage.succeeded, "\(damage.stderr)")
        let before = try Data(contentsOf: URL(fileURLWithPath: "\(state)/rampart.sqlite"))
        let token = try rampart("token", "create", "--state", state, "--spiffe-id", Self.id)
        #expect(token.status == 1 && token.stderr.contains("damaged") && token.stdout.isEmpty, "\(token.stdout)\(token.stderr)")
        // Refused and left byte for byte as it was: what a restore or a forensic look needs.
        let policy = "\(state)/p.yaml"
        try "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec: {}\n"
            .write(toFile: policy, atomically: true, encoding: .utf8)
        let applied = try rampart("apply", "-f", policy, "--state", state)
        #expect(applied.status == 1 && applied.stderr.contains("damaged"), "\(applied.stdout)\(applied.stderr)")
        let deleted = try rampart("delete", "ap", "p", "-n", "shop", "--state", state)
        #expect(deleted.status != 0, "\(deleted.stdout)\(deleted.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(state)/rampart.sqlite")) == before, "a refusing command changed the damaged store")
    }
}
