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
