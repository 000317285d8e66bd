//! SERIALIZABLE transactions are retried on SQLSTATE 40001, shown by forcing
//! a write-skew conflict on the real PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use foodfast_store::StoreError;
use foodfast_store::postgres::{Postgres, PostgresConfig, TxError};
use tokio::sync::Barrier;

async fn two_row_table(config: &PostgresConfig) -> Postgres {
    let postgres = Postgres::connect(config).await.unwrap();
    postgres
        .client()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE balances (id INT8 PRIMARY KEY, amount INT8 NOT NULL);
             INSERT INTO balances VALUES (1, 100), (2, 100);",
        )
        .await
        .unwrap();
    postgres
}

/// Adds the sum of both rows to row `id`. Run concurrently for rows 1 and 2,
/// each reads what the other writes: a write skew that only SERIALIZABLE
/// catches. Both transactions meet at `barrier` on their first attempt so
/// that they really overlap.
async fn add_total_to(
    postgres: &Postgres,
    id: i64,
    barrier: Arc<Barrier>,
    attempts: Arc<AtomicU32>,
) -> Result<(), StoreError> {
    postgres
        .serializable(move |tx| {
            let barrier = barrier.clone();
            let attempts = attempts.clone();
            Box::pin(async move {
                let first_attempt = attempts.fetch_add(1, Ordering::SeqCst) < 2;
                let total: i64 = tx.query_one("SELECT sum(amount)::INT8 FROM balances", &[]).await?.get(0);
                if first_attempt {
                    barrier.wait().await;
                }
                tx.execute("UPDATE balances SET amount = amount + $1 WHERE id = $2", &[&total, &id]).await?;
                Ok::<_, TxError>(())
            })
        })
        .await
}

async fn amounts(postgres: &Postgres) -> Vec<i64> {
    let client = postgres.client().await.unwrap();
    client.query("SELECT amount FROM balances ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn a_serialization_failure_is_retried_until_the_transaction_commits() {
    let config = foodfast_testkit::fresh_postgres().await;
    let postgres = two_row_table(&config).await;
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));

    let (first, second) = tokio::join!(
        add_total_to(&postgres, 1, barrier.clone(), attempts.clone()),
        add_total_to(&postgres, 2, barrier.clone(), attempts.clone()),
    );
    first.unwrap();
    second.unwrap();

    // One of the two hit 40001 and ran again.
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    // As if run one after the other: the first adds 200 to its row (300),
    // the second then sees 400 and adds that to its own (500). Without
    // SERIALIZABLE both would have added 200.
    let mut rows = amounts(&postgres).await;
    rows.sort();
    assert_eq!(rows, vec![300, 500]);
}

#[tokio::test]
async fn a_conflict_that_outlasts_the_retries_is_reported_and_changes_nothing() {
    let config = PostgresConfig { max_tx_attempts: 1, ..foodfast_testkit::fresh_postgres().await };
    let postgres = two_row_table(&config).await;
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));

    let (first, second) = tokio::join!(
        add_total_to(&postgres, 1, barrier.clone(), attempts.clone()),
        add_total_to(&postgres, 2, barrier.clone(), attempts.clone()),
    );
    let results = [first, second];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    let conflict = results.into_iter().find_map(Result::err).unwrap();
    assert!(matches!(conflict, StoreError::Conflict { attempts: 1 }), "{conflict:?}");

    // Only the winner's write is there.
    let mut rows = amounts(&postgres).await;
    rows.sort();
    assert_eq!(rows, vec![100, 300]);
}
