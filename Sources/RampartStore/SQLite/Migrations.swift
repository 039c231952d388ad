import GRDB

/// The versioned schema. Migrations are append-only: never edit one that has shipped.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-issuance") { db in
            try db.execute(
                sql: """
                    CREATE TABLE issued_certificates (
                        serial TEXT PRIMARY KEY NOT NULL,
                        spiffe_id TEXT NOT NULL,
                        public_key_sha256 TEXT NOT NULL,
                        not_before DATETIME NOT NULL,
                        not_after DATETIME NOT NULL,
                        issued_at DATETIME NOT NULL,
                        caller_identity TEXT NOT NULL,
                        auth_method TEXT NOT NULL,
                        chain_pem TEXT NOT NULL,
                        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
                        revoked_at DATETIME,
                        revocation_reason TEXT
                    );
                    CREATE INDEX issued_certificates_spiffe_id ON issued_certificates(spiffe_id);
                    CREATE INDEX issued_certificates_not_after ON issued_certificates(not_after);

                    CREATE TABLE bootstrap_tokens (
                        token_sha256 TEXT PRIMARY KEY NOT NULL,
                        spiffe_id TEXT NOT NULL,
                        created_at DATETIME NOT NULL,
                        expires_at DATETIME NOT NULL,
                        used_at DATETIME
                    );

                    CREATE TABLE ca_authorities (
                        serial TEXT PRIMARY KEY NOT NULL,
                        subject TEXT NOT NULL,
                        certificate_pem TEXT NOT NULL,
                        slot TEXT NOT NULL CHECK (slot IN ('prepared', 'active', 'retired')),
                        not_before DATETIME NOT NULL,
                        not_after DATETIME NOT NULL,
                        created_at DATETIME NOT NULL
                    );

                    CREATE TABLE audit_events (
                        seq INTEGER PRIMARY KEY NOT NULL,
                        time DATETIME NOT NULL,
                        event_type TEXT NOT NULL,
                        actor TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        details TEXT NOT NULL,
                        prev_hash TEXT NOT NULL,
                        hash TEXT NOT NULL
                    );
                    """
            )
        }
        migrator.registerMigration("v2-config") { db in
            try db.execute(
                sql: """
                    CREATE TABLE config_resources (
                        kind TEXT NOT NULL CHECK (kind <> ''),
                        namespace TEXT NOT NULL CHECK (namespace <> ''),
                        name TEXT NOT NULL CHECK (name <> ''),
                        generation INTEGER NOT NULL CHECK (generation >= 1),
                        yaml TEXT NOT NULL,
                        created_at DATETIME NOT NULL,
                        updated_at DATETIME NOT NULL,
                        PRIMARY KEY (kind, namespace, name)
                    );

                    CREATE TABLE config_version (
                        id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
                        version INTEGER NOT NULL,
                        updated_at DATETIME
                    );
                    INSERT INTO config_version (id, version, updated_at) VALUES (1, 0, NULL);
                    """
            )
        }
        migrator.registerMigration("v3-revoked-index") { db in
            // Proxies are sent the unexpired revoked certificates, read several times a second; the
            // partial index holds only revoked rows, so that read stays cheap however many are active.
            try db.execute(
                sql: """
                    CREATE INDEX issued_certificates_revoked ON issued_certificates(not_after)
                        WHERE status = 'revoked';
                    """
            )
        }
        return migrator
    }
}

extension CertificateRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "issued_certificates"
}

extension BootstrapTokenRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "bootstrap_tokens"
}

extension AuthorityRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "ca_authorities"
}

extension AuditEvent: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "audit_events"
}

extension Migrations {
    /// Each table the current schema has, with the columns of its primary key, which every write
    /// looks rows up by.
    static let primaryKeys: [(table: String, columns: Set<String>)] = [
        ("issued_certificates", ["serial"]),
        ("bootstrap_tokens", ["token_sha256"]),
        ("ca_authorities", ["serial"]),
        ("audit_events", ["seq"]),
        ("config_resources", ["kind", "namespace", "name"]),
        ("config_version", ["id"]),
    ]

    /// What of the current schema a store lacks, in words, or `nil` when it has every table and
    /// primary key: a store changed outside Rampart is refused before anything looks a row up by
    /// a key its table no longer has.
    static func schemaProblem(_ db: Database) throws -> String? {
        for (table, columns) in primaryKeys {
            guard try db.tableExists(table) else { return "no table \(table)" }
            let key = try db.primaryKey(table)
            guard Set(key.columns) == columns else {
                return "table \(table) has no primary key on \(columns.sorted().joined(separator: ", "))"
            }
        }
        return nil
    }

    /// Whether a store has Rampart's tables but no record of the migrations that made them.
    static func isUnrecorded(_ db: Database) throws -> Bool {
        try !db.tableExists("grdb_migrations") && primaryKeys.contains { try db.tableExists($0.table) }
    }

    /// The migrations a store records that this rampart does not know, if any: it was written by
    /// a newer rampart.
    static func unknownMigrations(_ db: Database) throws -> [String] {
        guard try db.tableExists("grdb_migrations") else { return [] }
        let known = Set(migrator.migrations)
        return try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations").filter { !known.contains($0) }
    }
}
