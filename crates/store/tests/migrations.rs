//! `migrate` on the real PostgreSQL and Cassandra: each file once, a second
//! run changes nothing, an edited file is refused.

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
async fn a_failing_migration_leaves_nothing_behind() {
    let config = foodfast_testkit::fresh_postgres().await;
    let postgres = Postgres::connect(&config).await.unwrap();
    let broken = vec![Migration::new(
        "0001_broken.sql",
        "CREATE TABLE half (id UUID PRIMARY KEY); CREATE TABLE half_too (id UUID REFERENCES nowhere (id));",
    )];
    let err = migrate::migrate_postgres(&postgres, &broken).await.unwrap_err();
    assert!(matches!(&err, StoreError::MigrationFailed { name, .. } if name == "0001_broken.sql"), "{err}");
    let client = postgres.client().await.unwrap();
    let half_exists: bool = client.query_one("SELECT to_regclass('half') IS NOT NULL", &[]).await.unwrap().get(0);
    assert!(!half_exists);
    let recorded: i64 = client.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(recorded, 0);
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
