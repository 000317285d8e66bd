//! `migrate` on the real PostgreSQL and Cassandra: each file once, a second
//! run changes nothing, an edited file is refused, a failed run is finished by
//! the next, concurrent migrators take turns.

use foodfast_store::migrate::{self, Migration};
use foodfast_store::postgres::Postgres;
use foodfast_store::scylla::Scylla;
use foodfast_store::{StoreError, Stores};

#[tokio::test]
async fn postgres_migrations_apply_once_and_refuse_edits() {
    let config = foodfast_testkit::fresh_postgres().await;
    let postgres = Postgres::connect(&config).await.unwrap();
    let migrations = migrate::cockroach_migrations();

    let first = migrate::migrate_postgres(&postgres, &migrations).await.unwrap();
    assert_eq!(first.applied.len(), migrations.len());
    assert_eq!(first.already_applied, 0);
    let second = migrate::migrate_postgres(&postgres, &migrations).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.already_applied, migrations.len());

    let client = postgres.client().await.unwrap();
    for table in [
        "users",
        "restaurants",
        "menu_items",
        "orders",
        "order_items",
        "order_events",
        "idempotency_keys",
        "drivers",
        "deliveries",
        "delivery_offers",
    ] {
        client.query(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap_or_else(|e| panic!("{table}: {e}"));
    }

    // Edit the first file and add a new one: the edit is refused before the
    // new file is applied.
    let mut edited = migrations.clone();
    edited[0].body.push_str("\nCREATE TABLE sneaky (id UUID PRIMARY KEY);\n");
    edited.push(Migration::new("9999_new.sql", "CREATE TABLE brand_new (id UUID PRIMARY KEY);"));
    let err = migrate::migrate_postgres(&postgres, &edited).await.unwrap_err();
    assert!(matches!(&err, StoreError::MigrationEdited { name, .. } if *name == migrations[0].name), "{err}");
    for table in ["sneaky", "brand_new"] {
        let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.unwrap().get(0);
        assert!(!exists, "{table} was created although the run was refused");
    }
}

#[tokio::test]
async fn a_failing_migration_is_not_recorded_and_the_next_run_finishes_it() {
    let config = foodfast_testkit::fresh_postgres().await;
    let postgres = Postgres::connect(&config).await.unwrap();
    let broken = vec![Migration::new(
        "0001_broken.sql",
        "CREATE TABLE IF NOT EXISTS half (id UUID PRIMARY KEY);
         CREATE TABLE IF NOT EXISTS half_too (id UUID REFERENCES nowhere (id));",
    )];
    let err = migrate::migrate_postgres(&postgres, &broken).await.unwrap_err();
    assert!(matches!(&err, StoreError::MigrationFailed { name, .. } if name == "0001_broken.sql"), "{err}");
    let client = postgres.client().await.unwrap();
    let recorded: i64 = client.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(recorded, 0, "a migration that failed half way was recorded as applied");

    // Its first statement ran (schema changes are not atomic on CockroachDB);
    // the fixed file runs again from the start and completes.
    let fixed = vec![Migration::new(
        "0001_broken.sql",
        "CREATE TABLE IF NOT EXISTS half (id UUID PRIMARY KEY);
         CREATE TABLE IF NOT EXISTS half_too (id UUID REFERENCES half (id));",
    )];
    let report = migrate::migrate_postgres(&postgres, &fixed).await.unwrap();
    assert_eq!(report.applied, vec!["0001_broken.sql".to_string()]);
    let half_too: bool = client.query_one("SELECT to_regclass('half_too') IS NOT NULL", &[]).await.unwrap().get(0);
    assert!(half_too);
}

/// What lets a run cut short be finished by the next one.
#[tokio::test]
async fn every_migration_statement_can_run_again() {
    let config = foodfast_testkit::fresh_postgres().await;
    let postgres = Postgres::connect(&config).await.unwrap();
    let migrations = migrate::cockroach_migrations();
    migrate::migrate_postgres(&postgres, &migrations).await.unwrap();
    let client = postgres.client().await.unwrap();
    for migration in &migrations {
        for statement in migrate::split_statements(&migration.body) {
            client
                .batch_execute(&statement)
                .await
                .unwrap_or_else(|e| panic!("{}: a second run of `{statement}` failed: {e}", migration.name));
        }
    }
}

#[tokio::test]
async fn concurrent_migrators_apply_each_file_once() {
    let config = foodfast_testkit::fresh_postgres().await;
    let postgres = Postgres::connect(&config).await.unwrap();
    let migrations = migrate::cockroach_migrations();
    let (first, second) = tokio::join!(
        migrate::migrate_postgres(&postgres, &migrations),
        migrate::migrate_postgres(&postgres, &migrations)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut applied = [first.applied, second.applied].concat();
    applied.sort();
    let names: Vec<String> = migrations.iter().map(|m| m.name.clone()).collect();
    assert_eq!(applied, names, "every file applied by exactly one of the two migrators");
}

#[tokio::test]
async fn a_migrator_waits_for_a_live_lease_and_takes_an_expired_one() {
    let config = foodfast_testkit::fresh_postgres().await;
    let postgres = Postgres::connect(&config).await.unwrap();
    migrate::migrate_postgres(&postgres, &[]).await.unwrap();
    let client = postgres.client().await.unwrap();
    let count_leases =
        async || -> i64 { client.query_one("SELECT count(*) FROM schema_migrations_lease", &[]).await.unwrap().get(0) };
    assert_eq!(count_leases().await, 0, "the lease was not released");

    // Another migrator's lease, live for 2 more seconds and not renewed (it died).
    client
        .execute(
            "INSERT INTO schema_migrations_lease (id, holder, expires_at)
             VALUES (1, gen_random_uuid(), now() + INTERVAL '2 seconds')",
            &[],
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let report = migrate::migrate_postgres(&postgres, &migrate::cockroach_migrations()).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500), "ran while another held the lease");
    assert!(!report.applied.is_empty());
    assert_eq!(count_leases().await, 0, "the lease was not released");
}

#[tokio::test]
async fn scylla_migrations_apply_once_and_partition_locations_by_city_and_day() {
    let config = foodfast_testkit::fresh_stores().await;
    let scylla = Scylla::connect(&config.scylla).await.unwrap();
    let migrations = migrate::scylla_migrations();

    let first = migrate::migrate_scylla(&scylla, &config.scylla, &migrations).await.unwrap();
    assert_eq!(first.applied.len(), migrations.len());
    let second = migrate::migrate_scylla(&scylla, &config.scylla, &migrations).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.already_applied, migrations.len());

    let keyspace = &config.scylla.keyspace;
    let mut partition_key: Vec<(i32, String)> = scylla
        .session()
        .query_unpaged(
            "SELECT position, column_name FROM system_schema.columns \
             WHERE keyspace_name = ? AND table_name = 'driver_locations_by_city' AND kind = 'partition_key' ALLOW FILTERING",
            (keyspace,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(i32, String)>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    partition_key.sort();
    let columns: Vec<_> = partition_key.into_iter().map(|(_, name)| name).collect();
    assert_eq!(columns, ["city", "day", "bucket"]);

    let (ttl, compaction): (i32, std::collections::HashMap<String, String>) = scylla
        .session()
        .query_unpaged(
            "SELECT default_time_to_live, compaction FROM system_schema.tables \
             WHERE keyspace_name = ? AND table_name = 'driver_locations_by_city'",
            (keyspace,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(ttl, 30 * 24 * 3600);
    assert!(compaction["class"].ends_with("TimeWindowCompactionStrategy"), "{compaction:?}");

    // An edited CQL file is refused too.
    let mut edited = migrations.clone();
    edited[0].body.push_str("\n-- edited\n");
    let err = migrate::migrate_scylla(&scylla, &config.scylla, &edited).await.unwrap_err();
    assert!(matches!(err, StoreError::MigrationEdited { .. }), "{err}");

    scylla.session().query_unpaged(format!("DROP KEYSPACE {keyspace}"), ()).await.unwrap();
}

#[tokio::test]
async fn every_store_connects_and_answers_a_probe() {
    let config = foodfast_testkit::fresh_stores().await;
    let stores = Stores::connect(&config).await.unwrap();
    let health = stores.probe(std::time::Duration::from_secs(5)).await;
    assert!(health.postgres && health.redis && health.scylla, "{health:?}");
}
