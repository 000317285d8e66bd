//! `foodfast migrate`: applies `migrations/cockroach/*.sql` and
//! `migrations/scylla/*.cql` in name order, each once, recording each with its
//! SHA-256 in a `schema_migrations` table of its own store. An applied file
//! that was edited since is refused before anything is applied.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;

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

/// Applies pending SQL migrations, each in its own transaction together with
/// its `schema_migrations` row.
pub async fn migrate_postgres(postgres: &Postgres, migrations: &[Migration]) -> Result<MigrationReport, StoreError> {
    let mut client = postgres.client().await?;
    client.batch_execute(sql::CREATE_MIGRATIONS_TABLE).await.map_err(StoreError::postgres)?;
    let applied: BTreeMap<String, String> = client
        .query(sql::SELECT_MIGRATIONS, &[])
        .await
        .map_err(StoreError::postgres)?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut report = MigrationReport { already_applied: applied.len(), ..Default::default() };
    for migration in pending(migrations, &applied)? {
        let failed = |source| StoreError::MigrationFailed { name: migration.name.clone(), source: Box::new(source) };
        let tx = client.transaction().await.map_err(|e| failed(StoreError::postgres(e)))?;
        // The row goes first: a concurrent migrator blocks on it, then fails
        // with a unique violation instead of applying the file twice.
        let claimed = tx.execute(sql::INSERT_MIGRATION, &[&migration.name, &migration.checksum()]).await;
        match claimed {
            Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tracing::info!(migration = %migration.name, "applied concurrently by another migrator");
                continue;
            }
            Err(err) => return Err(failed(StoreError::postgres(err))),
            Ok(_) => {}
        }
        tx.batch_execute(&migration.body).await.map_err(|e| failed(StoreError::postgres(e)))?;
        tx.commit().await.map_err(|e| failed(StoreError::postgres(e)))?;
        tracing::info!(migration = %migration.name, "applied");
        report.applied.push(migration.name.clone());
    }
    Ok(report)
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
        for statement in split_cql(&migration.body) {
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

/// Splits a CQL file into statements at `;`, skipping `--` and `//` comments
/// and not splitting inside quoted strings or identifiers.
pub fn split_cql(body: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = body.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => skip_line(&mut chars),
                '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
                ';' => push_statement(&mut statements, &mut current),
                _ => current.push(c),
            },
        }
    }
    push_statement(&mut statements, &mut current);
    statements
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
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
    fn split_cql_ignores_comments_and_quoted_semicolons() {
        let body = "-- a; comment\nCREATE TABLE a (x text); // another; one\n\
                    INSERT INTO a (x) VALUES ('semi;colon');\n  \n";
        assert_eq!(
            split_cql(body),
            vec!["CREATE TABLE a (x text)".to_string(), "INSERT INTO a (x) VALUES ('semi;colon')".to_string(),]
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
