//! Test data earlier runs left behind. A test never drops its own database,
//! keyspace or object directory (so a failed test's data can be looked at);
//! instead the first fresh store of every test process drops what is old
//! enough that no test still running can be using it. Without this a
//! developer's machine gathers thousands of databases and keyspaces.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foodfast_store::postgres::Postgres;
use foodfast_store::scylla::{Scylla, ScyllaConfig};

/// The prefix of every name [`name`] makes for a store.
pub const PREFIX: &str = "test";

/// Longer than any test run (CI allows 90 minutes).
const KEEP_FOR: Duration = Duration::from_secs(6 * 3600);

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs()
}

/// `<prefix>_<unix seconds>_<uuid>`: unique, and telling its age. With the
/// prefix `test` it is 48 characters, CQL's limit for a keyspace.
pub fn name(prefix: &str) -> String {
    format!("{prefix}_{}_{}", now_secs(), uuid::Uuid::new_v4().simple())
}

/// Whether `name` is a store of a test run that ended: made by [`name`] more
/// than [`KEEP_FOR`] ago, or before names told their age (`test_<uuid>`).
fn is_leftover(name: &str, now: u64) -> bool {
    let is_id = |id: &str| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(rest) = name.strip_prefix(PREFIX).and_then(|rest| rest.strip_prefix('_')) else { return false };
    match rest.split_once('_') {
        Some((secs, id)) => {
            is_id(id) && secs.parse::<u64>().is_ok_and(|made| now.saturating_sub(made) > KEEP_FOR.as_secs())
        }
        None => is_id(rest),
    }
}

static SWEPT: AtomicBool = AtomicBool::new(false);

/// Drops the leftover databases, keyspaces and object directories, once per
/// process. Failures are reported and otherwise ignored: the next process
/// tries again.
pub async fn sweep_once(admin: &Postgres, scylla: &ScyllaConfig, objects: &std::path::Path) {
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let now = now_secs();
    if let Err(err) = sweep_postgres(admin, now).await {
        eprintln!("testkit: could not drop leftover test databases: {err}");
    }
    if let Err(err) = sweep_scylla(scylla, now).await {
        eprintln!("testkit: could not drop leftover test keyspaces: {err}");
    }
    for entry in std::fs::read_dir(objects).into_iter().flatten().flatten() {
        if entry.file_name().to_str().is_some_and(|name| is_leftover(name, now)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

async fn sweep_postgres(admin: &Postgres, now: u64) -> Result<(), String> {
    let client = admin.client().await.map_err(|err| err.to_string())?;
    let rows = client.query("SELECT datname FROM pg_database", &[]).await.map_err(|err| err.to_string())?;
    for row in rows {
        let name: String = row.get(0);
        if is_leftover(&name, now) {
            // FORCE: a test process that crashed may have left a connection behind.
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            client.batch_execute(&drop).await.map_err(|err| format!("{name}: {err}"))?;
        }
    }
    Ok(())
}

async fn sweep_scylla(config: &ScyllaConfig, now: u64) -> Result<(), String> {
    let scylla = Scylla::connect(config).await.map_err(|err| err.to_string())?;
    let session = scylla.session();
    let rows = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await
        .map_err(|err| err.to_string())?
        .into_rows_result()
        .map_err(|err| err.to_string())?;
    let names: Vec<String> = rows
        .rows::<(String,)>()
        .map_err(|err| err.to_string())?
        .map(|row| row.map(|(name,)| name))
        .collect::<Result<_, _>>()
        .map_err(|err| err.to_string())?;
    for name in names.iter().filter(|name| is_leftover(name, now)) {
        let drop = format!("DROP KEYSPACE IF EXISTS {name}");
        session.query_unpaged(drop, ()).await.map_err(|err| format!("{name}: {err}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_test_names_are_leftovers() {
        let now = now_secs();
        let fresh = name(PREFIX);
        assert_eq!(fresh.len(), 48, "{fresh}: a keyspace name may have 48 characters");
        assert!(!is_leftover(&fresh, now), "a store made now is in use");
        assert!(!is_leftover(&fresh, now + KEEP_FOR.as_secs()), "still young enough");
        assert!(is_leftover(&fresh, now + KEEP_FOR.as_secs() + 1));
        let id = uuid::Uuid::new_v4().simple().to_string();
        assert!(is_leftover(&format!("test_{id}"), now), "made before names told their age");
        for kept in ["foodfast", "foodfast_ghz", "postgres", "system_schema", "test", "test_", "tests_1_2"] {
            assert!(!is_leftover(kept, now + 10 * KEEP_FOR.as_secs()), "{kept}");
        }
        assert!(!is_leftover(&format!("test_12_{}", &id[..31]), now + 10 * KEEP_FOR.as_secs()), "not an id");
    }
}
