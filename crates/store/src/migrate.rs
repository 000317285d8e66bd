//! `foodfast migrate`: applies `migrations/cockroach/*.sql` and
//! `migrations/scylla/*.cql` in name order, each once, recording each with its
//! SHA-256 in a `schema_migrations` table of its own store. An applied file
//! that was edited since is refused before anything is applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::postgres::Postgres;
use crate::scylla::{Scylla, ScyllaConfig};
use crate::{StoreError, sql};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub name: String,
    pub body: String,
}

impl Migration {
    pub fn new(name: impl Into<String>, body: impl Into<String>) -> Self {
        Self { name: name.into(), body: body.into() }
    }

    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.body.as_bytes()))
    }
}

/// The migrations built into this binary, in the order they apply.
pub fn cockroach_migrations() -> Vec<Migration> {
    embedded::COCKROACH.iter().map(|(name, body)| Migration::new(*name, *body)).collect()
}

/// The CQL migrations built into this binary, in the order they apply.
pub fn scylla_migrations() -> Vec<Migration> {
    embedded::SCYLLA.iter().map(|(name, body)| Migration::new(*name, *body)).collect()
}

/// What one run did to one store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Names applied by this run, in order.
    pub applied: Vec<String>,
    /// How many were already applied before this run.
    pub already_applied: usize,
}

/// Refuses edited or unknown applied migrations and returns the pending ones.
fn pending<'m>(
    migrations: &'m [Migration],
    applied: &BTreeMap<String, String>,
) -> Result<Vec<&'m Migration>, StoreError> {
    for (name, applied_checksum) in applied {
        let Some(migration) = migrations.iter().find(|m| &m.name == name) else {
            return Err(StoreError::MigrationUnknown { name: name.clone() });
        };
        let current = migration.checksum();
        if &current != applied_checksum {
            return Err(StoreError::MigrationEdited { name: name.clone(), applied: applied_checksum.clone(), current });
        }
    }
    Ok(migrations.iter().filter(|m| !applied.contains_key(&m.name)).collect())
}

/// How long a migrator's lease lasts unless renewed, how often it is renewed,
/// and how often a migrator waiting for another's lease asks again.
const LEASE: Duration = Duration::from_secs(60);
const LEASE_RENEWAL: Duration = Duration::from_secs(20);
const LEASE_POLL: Duration = Duration::from_millis(500);

/// Applies pending SQL migrations one statement at a time, each in its own
/// implicit transaction, and records a file once its last statement ran.
///
/// CockroachDB does not change a schema atomically inside a transaction
/// (before v25.1 it refuses DDL after a write in the same transaction; from
/// v25.1 it commits the transaction before each DDL statement), so a migration
/// is atomic on neither engine: every statement must be idempotent (`IF NOT
/// EXISTS`, `ON CONFLICT`), and a run cut short is finished by the next one. A
/// lease in the database keeps concurrent migrators from running at once.
pub async fn migrate_postgres(postgres: &Postgres, migrations: &[Migration]) -> Result<MigrationReport, StoreError> {
    create_table(postgres, sql::CREATE_MIGRATIONS_LEASE_TABLE).await?;
    let lease = Lease::take(postgres).await?;
    let report = apply_postgres(postgres, migrations, &lease).await;
    lease.release(postgres).await;
    report
}

async fn apply_postgres(
    postgres: &Postgres,
    migrations: &[Migration],
    lease: &Lease,
) -> Result<MigrationReport, StoreError> {
    create_table(postgres, sql::CREATE_MIGRATIONS_TABLE).await?;
    let applied: BTreeMap<String, String> =
        postgres.statement(sql::SELECT_MIGRATIONS, &[]).await?.iter().map(|row| (row.get(0), row.get(1))).collect();
    let mut report = MigrationReport { already_applied: applied.len(), ..Default::default() };
    for migration in pending(migrations, &applied)? {
        let failed = |source| StoreError::MigrationFailed { name: migration.name.clone(), source: Box::new(source) };
        for statement in split_statements(&migration.body) {
            lease.check()?;
            postgres.statement(&statement, &[]).await.map_err(failed)?;
        }
        lease.check()?;
        postgres.statement(sql::INSERT_MIGRATION, &[&migration.name, &migration.checksum()]).await.map_err(failed)?;
        tracing::info!(migration = %migration.name, "applied");
        report.applied.push(migration.name.clone());
    }
    Ok(report)
}

/// Creates one of the migrator's own tables. Two first migrators can collide
/// in PostgreSQL's catalog even with `IF NOT EXISTS`; the loser's second try
/// finds the table.
async fn create_table(postgres: &Postgres, statement: &str) -> Result<(), StoreError> {
    if postgres.statement(statement, &[]).await.is_err() {
        postgres.statement(statement, &[]).await?;
    }
    Ok(())
}

/// This migrator's hold on `schema_migrations_lease`, renewed in the
/// background until released or dropped.
struct Lease {
    holder: Uuid,
    lost: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Waits until no other live migrator holds the lease, then takes it.
    async fn take(postgres: &Postgres) -> Result<Self, StoreError> {
        let holder = Uuid::new_v4();
        let mut told_at: Option<Instant> = None;
        while !Self::claim(postgres, holder).await? {
            if told_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                tracing::info!("another migrator is running; waiting for it to finish or for its lease to expire");
                told_at = Some(Instant::now());
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(Self::renew(postgres.clone(), holder, lost.clone()));
        Ok(Self { holder, lost, renewal })
    }

    /// Takes or renews the lease; false when another migrator holds it.
    async fn claim(postgres: &Postgres, holder: Uuid) -> Result<bool, StoreError> {
        let rows = postgres.statement(sql::TAKE_MIGRATIONS_LEASE, &[&holder, &LEASE.as_secs_f64()]).await?;
        Ok(!rows.is_empty())
    }

    async fn renew(postgres: Postgres, holder: Uuid, lost: Arc<AtomicBool>) {
        let mut renewed_at = Instant::now();
        loop {
            tokio::time::sleep(LEASE_RENEWAL).await;
            match Self::claim(&postgres, holder).await {
                Ok(true) => renewed_at = Instant::now(),
                Ok(false) => break,
                Err(err) if renewed_at.elapsed() < LEASE => {
                    tracing::warn!(error = %crate::Chain(&err), "could not renew the migrations lease; retrying");
                }
                Err(_) => break,
            }
        }
        lost.store(true, Ordering::Release);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.lost.load(Ordering::Acquire) { Err(StoreError::MigrationLeaseLost) } else { Ok(()) }
    }

    /// Frees the lease for the next migrator; if that fails, it expires.
    async fn release(self, postgres: &Postgres) {
        self.renewal.abort();
        if let Err(err) = postgres.statement(sql::RELEASE_MIGRATIONS_LEASE, &[&self.holder]).await {
            tracing::warn!(error = %crate::Chain(&err), "could not release the migrations lease; it expires by itself");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// Creates the keyspace if needed and applies pending CQL migrations. CQL
/// schema changes are not transactional, so every statement in a migration
/// must be idempotent (`IF NOT EXISTS`); a run cut short is finished by the
/// next one.
pub async fn migrate_scylla(
    scylla: &Scylla,
    config: &ScyllaConfig,
    migrations: &[Migration],
) -> Result<MigrationReport, StoreError> {
    let session = scylla.session();
    let keyspace = &config.keyspace;
    session
        .query_unpaged(sql::cql::create_keyspace(keyspace, &config.replication), ())
        .await
        .map_err(StoreError::scylla)?;
    session.query_unpaged(sql::cql::create_migrations_table(keyspace), ()).await.map_err(StoreError::scylla)?;
    session.use_keyspace(keyspace, false).await.map_err(StoreError::scylla_query)?;

    let rows = session
        .query_unpaged(sql::cql::select_migrations(keyspace), ())
        .await
        .map_err(StoreError::scylla)?
        .into_rows_result()
        .map_err(StoreError::scylla_query)?;
    let applied: BTreeMap<String, String> = rows
        .rows::<(String, String)>()
        .map_err(StoreError::scylla_query)?
        .collect::<Result<_, _>>()
        .map_err(StoreError::scylla_query)?;

    let mut report = MigrationReport { already_applied: applied.len(), ..Default::default() };
    let insert = session.prepare(sql::cql::insert_migration(keyspace)).await.map_err(StoreError::scylla_query)?;
    for migration in pending(migrations, &applied)? {
        let failed = |source| StoreError::MigrationFailed { name: migration.name.clone(), source: Box::new(source) };
        for statement in split_statements(&migration.body) {
            session.query_unpaged(statement, ()).await.map_err(|e| failed(StoreError::scylla(e)))?;
        }
        session
            .execute_unpaged(&insert, (&migration.name, migration.checksum()))
            .await
            .map_err(|e| failed(StoreError::scylla(e)))?;
        tracing::info!(migration = %migration.name, "applied");
        report.applied.push(migration.name.clone());
    }
    Ok(report)
}

/// Splits a migration file (SQL or CQL) into statements at `;`, skipping
/// `--`, `//` and `/* */` comments, and never splitting inside a quoted string,
/// a quoted identifier or a dollar-quoted body (`$$ ... $$`, `$tag$ ... $tag$`).
pub fn split_statements(body: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        let token = match c {
            '\'' | '"' => rest[1..].find(c).map_or(rest.len(), |end| end + 2),
            '$' => match dollar_tag(rest) {
                Some(tag) => rest[tag.len()..].find(tag).map_or(rest.len(), |end| tag.len() + end + tag.len()),
                None => 1,
            },
            _ if rest.starts_with("--") || rest.starts_with("//") => {
                let comment = rest.find('\n').unwrap_or(rest.len());
                current.push(' ');
                rest = &rest[comment..];
                continue;
            }
            _ if rest.starts_with("/*") => {
                let comment = rest.find("*/").map_or(rest.len(), |end| end + 2);
                current.push(' ');
                rest = &rest[comment..];
                continue;
            }
            ';' => {
                push_statement(&mut statements, &mut current);
                rest = &rest[1..];
                continue;
            }
            _ => c.len_utf8(),
        };
        current.push_str(&rest[..token]);
        rest = &rest[token..];
    }
    push_statement(&mut statements, &mut current);
    statements
}

/// The opening `$tag$` of a dollar-quoted body at the start of `text`; `$1`
/// (a placeholder) is none.
fn dollar_tag(text: &str) -> Option<&str> {
    let end = text[1..].find('$')? + 1;
    let tag = &text[1..end];
    let is_tag =
        tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !tag.starts_with(|c: char| c.is_ascii_digit());
    is_tag.then_some(&text[..=end])
}

fn push_statement(statements: &mut Vec<String>, current: &mut String) {
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_string());
    }
    current.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_statements_ignores_comments_and_quoted_semicolons() {
        let body = "-- a; comment\nCREATE TABLE a (x text); // another; one\n\
                    INSERT INTO a (x) VALUES ('semi;colon', \"odd;name\", 'it''s');\n  \n\
                    SELECT/* a; block */1;";
        assert_eq!(
            split_statements(body),
            vec![
                "CREATE TABLE a (x text)".to_string(),
                "INSERT INTO a (x) VALUES ('semi;colon', \"odd;name\", 'it''s')".to_string(),
                "SELECT 1".to_string(),
            ]
        );
    }

    #[test]
    fn split_statements_keeps_dollar_quoted_bodies_whole() {
        let body = "DO $$ BEGIN PERFORM 1; END $$; DO $fn$ BEGIN RAISE NOTICE '$$;'; END $fn$;\nSELECT $1;";
        assert_eq!(
            split_statements(body),
            vec![
                "DO $$ BEGIN PERFORM 1; END $$".to_string(),
                "DO $fn$ BEGIN RAISE NOTICE '$$;'; END $fn$".to_string(),
                "SELECT $1".to_string(),
            ]
        );
    }

    #[test]
    fn embedded_migrations_are_sorted_and_named_by_kind() {
        for (migrations, extension) in [(cockroach_migrations(), ".sql"), (scylla_migrations(), ".cql")] {
            assert!(!migrations.is_empty());
            assert!(migrations.iter().all(|m| m.name.ends_with(extension)));
            assert!(migrations.windows(2).all(|w| w[0].name < w[1].name));
        }
    }

    #[test]
    fn pending_refuses_an_edited_migration_and_names_it() {
        let original = Migration::new("0001_a.sql", "CREATE TABLE a (id UUID PRIMARY KEY)");
        let applied = BTreeMap::from([(original.name.clone(), original.checksum())]);
        let edited = vec![Migration::new("0001_a.sql", "CREATE TABLE a (id UUID PRIMARY KEY, x INT)")];
        let err = pending(&edited, &applied).unwrap_err();
        assert!(matches!(&err, StoreError::MigrationEdited { name, .. } if name == "0001_a.sql"), "{err}");
        assert!(err.to_string().contains("must never be edited"));
    }

    #[test]
    fn pending_skips_applied_and_refuses_unknown() {
        let a = Migration::new("0001_a.sql", "A");
        let b = Migration::new("0002_b.sql", "B");
        let applied = BTreeMap::from([(a.name.clone(), a.checksum())]);
        let migrations = vec![a.clone(), b.clone()];
        assert_eq!(pending(&migrations, &applied).unwrap(), vec![&b]);
        let err = pending(std::slice::from_ref(&b), &applied).unwrap_err();
        assert!(matches!(err, StoreError::MigrationUnknown { name } if name == "0001_a.sql"));
    }
}
