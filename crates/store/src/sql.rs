//! Every SQL statement the store sends, in one place, so that a test can run
//! each through CockroachDB's parser (`tools/crdbcheck`).

macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident = $sql:expr;)*) => {
        $($(#[$doc])* pub const $name: &str = $sql;)*
        /// Every statement above, by name.
        pub const ALL: &[(&str, &str)] = &[$((stringify!($name), $name)),*];
    };
}

statements! {
    PING = "SELECT 1";

    CREATE_MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (
        name TEXT PRIMARY KEY,
        checksum TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )";
    SELECT_MIGRATIONS = "SELECT name, checksum FROM schema_migrations ORDER BY name";
    INSERT_MIGRATION = "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)";
}

/// CQL the store sends. Statements that name the keyspace are built by
/// functions, since CQL cannot bind identifiers.
pub mod cql {
    pub const PING: &str = "SELECT release_version FROM system.local";

    pub fn create_keyspace(keyspace: &str, replication: &str) -> String {
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}")
    }

    pub fn create_migrations_table(keyspace: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations \
             (name text PRIMARY KEY, checksum text, applied_at timestamp)"
        )
    }

    pub fn select_migrations(keyspace: &str) -> String {
        format!("SELECT name, checksum FROM {keyspace}.schema_migrations")
    }

    pub fn insert_migration(keyspace: &str) -> String {
        format!(
            "INSERT INTO {keyspace}.schema_migrations (name, checksum, applied_at) VALUES (?, ?, toTimestamp(now()))"
        )
    }
}
