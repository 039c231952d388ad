import Foundation
import Testing

/// The commands that only read (`get`, `cert list`, `cert show`, `audit verify`, `audit list`) work
/// for a user who may read the state directory but not write it, change nothing of the owner's,
/// and see what a running CA has written; the commands that write still refuse such a user.
@Suite("reading a store without write access", .serialized)
struct ReadOnlyStoreTests {
    /// Runs rampart as a user who can read the state directory but not write it: `nobody` when the
    /// tests run as root (root may write anything), else this user with the directory and its
    /// files made read-only first.
    struct Reader {
        let state: String
        let asRoot = geteuid() == 0

        init(state: String) throws {
            self.state = state
            if asRoot {
                let parent = (state as NSString).deletingLastPathComponent
                for directory in [parent, state] {
                    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
                }
                _ = try Self.binary()
            }
        }

        static let nobody = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"]

        /// The rampart executable as `nobody` can run it: the built one, or a copy in a temporary
        /// directory when the checkout is not open to other users.
        static func binary() throws -> String { try resolvedBinary.get() }

        private static let resolvedBinary = Result { try findBinary() }

        private static func findBinary() throws -> String {
            if try run("setpriv", nobody + ["test", "-x", Paths.rampart]).succeeded { return Paths.rampart }
            let directory = try Paths.temporaryDirectory("reader-bin")
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
            let copy = "\(directory)/rampart"
            try FileManager.default.copyItem(atPath: Paths.rampart, toPath: copy)
            let check = try run("setpriv", nobody + ["test", "-x", copy])
            guard check.succeeded else { throw TestFailure("the user nobody cannot run \(copy): \(check.stderr)") }
            return copy
        }

        /// Takes write access away from this user (when not root) for the duration of `body`.
        func readOnly<T>(_ body: () throws -> T) throws -> T {
            guard !asRoot else { return try body() }
            let manager = FileManager.default
            let files = try manager.contentsOfDirectory(atPath: state).map { "\(state)/\($0)" }
            let modes = try files.map { try manager.attributesOfItem(atPath: $0)[.posixPermissions] as? Int ?? 0o600 }
            for (file, mode) in zip(files, modes) {
                try manager.setAttributes([.posixPermissions: mode & 0o444], ofItemAtPath: file)
            }
            try manager.setAttributes([.posixPermissions: 0o555], ofItemAtPath: state)
            defer {
                try? manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: state)
                for (file, mode) in zip(files, modes) { try? manager.setAttributes([.posixPermissions: mode], ofItemAtPath: file) }
            }
            return try body()
        }

        func rampart(_ arguments: String...) throws -> CommandResult {
            try readOnly {
                asRoot
                    ? try run("setpriv", Self.nobody + [try Self.binary()] + arguments)
                    : try run(Paths.rampart, arguments)
            }
        }
    }

    static func policy(_ name: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: \(name), namespace: shop}
        spec:
          action: DENY
          rules:
          - to: [{operation: {paths: ["/admin"], ports: ["8080"]}}]
        """
    }

    static func files(in directory: String) throws -> [String: Int] {
        var sizes: [String: Int] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            sizes[name] = (try FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)"))[.size] as? Int
        }
        return sizes
    }

    @Test("get, cert list and show, audit verify and list read the owner's store and leave it as it was")
    func readCommands() throws {
        let ca = try CAProcess(label: "read-only")
        let file = "\(ca.directory)/deny.yaml"
        try Self.policy("deny-admin").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        let (csr, _) = try OpenSSL.csr(in: ca.directory, name: "job")
        let signed = try rampart("cert", "sign", "--state", ca.state, "--csr", csr, "--spiffe-id", "spiffe://cluster.local/ns/batch/sa/job")
        #expect(signed.succeeded, "\(signed.stderr)")
        // A command may leave SQLite's -wal and -shm files behind it; closing the store cleanly
        // (as the CA does when it stops) folds them in, so the reader meets the database alone.
        let database = "\(ca.state)/rampart.sqlite"
        let close = try run("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM sqlite_master').fetchall(); c.close()", database])
        #expect(close.succeeded, "\(close.stderr)")
        let reader = try Reader(state: ca.state)
        let before = try Self.files(in: ca.state)
        #expect(before["rampart.sqlite-wal"] == nil && before["rampart.sqlite-shm"] == nil, "\(before)")

        let get = try reader.rampart("get", "ap", "-A", "--state", ca.state, "-o", "name")
        #expect(get.succeeded, "\(get.stderr)")
        #expect(get.stdout == "authorizationpolicy.security.istio.io/deny-admin\n", "\(get.stdout)")
        let list = try reader.rampart("cert", "list", "--state", ca.state, "--json")
        #expect(list.succeeded, "\(list.stderr)")
        let certificates = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(certificates.count == 1)
        let serial = certificates.first?["serial"] as? String ?? ""
        #expect(certificates.first?["spiffe_id"] as? String == "spiffe://cluster.local/ns/batch/sa/job")
        let show = try reader.rampart("cert", "show", serial, "--state", ca.state)
        #expect(show.succeeded && show.stdout.contains("BEGIN CERTIFICATE"), "\(show.stderr)")
        let verify = try reader.rampart("audit", "verify", "--state", ca.state)
        #expect(verify.succeeded && verify.stdout.contains("intact"), "\(verify.stdout)\(verify.stderr)")
        let events = try reader.rampart("audit", "list", "--state", ca.state)
        #expect(events.succeeded && events.stdout.contains("config.applied"), "\(events.stderr)")
        // Nothing was created beside the store, and nothing in it changed.
        #expect(try Self.files(in: ca.state) == before)

        // A dry run only reads, so the reader may make one.
        let preview = try reader.rampart("apply", "-f", file, "--dry-run", "--state", ca.state)
        #expect(preview.succeeded && preview.stdout.contains("unchanged (dry run)"), "\(preview.stdout)\(preview.stderr)")
        #expect(try Self.files(in: ca.state) == before)

        // The commands that write still need the owner, say so, and change nothing.
        let apply = try reader.rampart("apply", "-f", file, "--state", ca.state)
        #expect(!apply.succeeded && apply.stderr.contains("for writing"), "\(apply.stderr)")
        let delete = try reader.rampart("delete", "ap", "deny-admin", "-n", "shop", "--state", ca.state)
        #expect(!delete.succeeded && delete.stderr.contains("for writing"), "\(delete.stderr)")
        let revoke = try reader.rampart("cert", "revoke", serial, "--state", ca.state)
        #expect(!revoke.succeeded && revoke.stderr.contains("for writing"), "\(revoke.stderr)")
        let owner = try rampart("cert", "list", "--state", ca.state, "--json")
        #expect(owner.stdout.contains("\"active\""), "\(owner.stdout)")
        #expect(try rampart("get", "ap", "-A", "--state", ca.state, "-o", "name").stdout.contains("deny-admin"))
    }

    @Test("the owner's read commands neither wait for another process's write nor change the file")
    func ownerReadsWithoutWriting() throws {
        let ca = try CAProcess(label: "owner-read")
        let file = "\(ca.directory)/deny.yaml"
        try Self.policy("deny-admin").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        let database = "\(ca.state)/rampart.sqlite"
        let version = "import sqlite3,sys; print(sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True).execute('PRAGMA schema_version').fetchone()[0])"
        let before = try run("python3", ["-c", version, database]).stdout
        // Another process holds the write lock for 8 s; reading must not wait for it (the busy timeout is 10 s).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(8); c.execute('ROLLBACK')", database]
        let output = Pipe()
        holder.standardOutput = output
        try holder.run()
        defer { holder.waitUntilExit() }
        _ = output.fileHandleForReading.availableData  // "locked"
        let started = Date()
        let get = try rampart("get", "ap", "-A", "--state", ca.state, "-o", "name")
        let verify = try rampart("audit", "verify", "--state", ca.state)
        #expect(Date().timeIntervalSince(started) < 6, "the reads waited for the writer")
        #expect(get.succeeded && get.stdout.contains("deny-admin"), "\(get.stderr)")
        #expect(verify.succeeded && verify.stdout.contains("intact"), "\(verify.stdout)\(verify.stderr)")
        #expect(try run("python3", ["-c", version, database]).stdout == before, "a read changed the schema cookie")
    }

    @Test("a reader sees what a running CA has written and not yet checkpointed")
    func readWhileServing() throws {
        let ca = try CAProcess(label: "read-serving")
        try ca.start()
        defer { ca.stop() }
        let file = "\(ca.directory)/deny.yaml"
        try Self.policy("deny-while-serving").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try rampart("apply", "-f", file, "--state", ca.state).succeeded)
        let reader = try Reader(state: ca.state)
        #expect(FileManager.default.fileExists(atPath: "\(ca.state)/rampart.sqlite-wal"))
        let get = try reader.rampart("get", "ap", "-n", "shop", "--state", ca.state, "-o", "name")
        #expect(get.succeeded, "\(get.stderr)")
        #expect(get.stdout == "authorizationpolicy.security.istio.io/deny-while-serving\n", "\(get.stdout)")

        // A CA killed outright leaves its -wal and -shm files: the reader still reads through
        // them, and a command that writes is refused even when it would change nothing.
        ca.kill9()
        #expect(FileManager.default.fileExists(atPath: "\(ca.state)/rampart.sqlite-wal"))
        let after = try reader.rampart("get", "ap", "-n", "shop", "--state", ca.state, "-o", "name")
        #expect(after.stdout == "authorizationpolicy.security.istio.io/deny-while-serving\n", "\(after.stdout)\(after.stderr)")
        let unchanged = try reader.rampart("apply", "-f", file, "--state", ca.state)
        #expect(!unchanged.succeeded && unchanged.stderr.contains("for writing"), "\(unchanged.stdout)\(unchanged.stderr)")
    }

    @Test(
        "a store or directory the user cannot read is named as such, with what to do",
        .enabled(if: geteuid() == 0, "runs the reader as nobody, which only root can do"))
    func unreadable() throws {
        let ca = try CAProcess(label: "read-denied")
        let reader = try Reader(state: ca.state)
        let database = "\(ca.state)/rampart.sqlite"
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: database)
        let store = try reader.rampart("get", "ap", "-A", "--state", ca.state)
        #expect(store.status != 0, "\(store.stdout)")
        #expect(store.stderr.contains("cannot read the store") && store.stderr.contains("read access"), "\(store.stderr)")

        // A store an older rampart wrote cannot be brought up to date by a reader.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: database)
        let forget = try run(
            "python3",
            ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM grdb_migrations WHERE rowid = (SELECT max(rowid) FROM grdb_migrations)'); c.commit()", database])
        #expect(forget.succeeded, "\(forget.stderr)")
        let older = try reader.rampart("get", "ap", "-A", "--state", ca.state)
        #expect(older.status != 0)
        #expect(older.stderr.contains("older rampart") && older.stderr.contains("owner"), "\(older.stderr)")

        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: ca.state)
        let directory = try reader.rampart("cert", "list", "--state", ca.state)
        #expect(directory.status != 0)
        #expect(directory.stderr.contains("cannot be read by this user"), "\(directory.stderr)")
        #expect(!directory.stderr.contains("not an initialized"), "\(directory.stderr)")
    }
}
