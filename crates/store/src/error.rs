use std::fmt;

use tokio_postgres::error::SqlState;

/// Which store an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Scylla,
    Redis,
    /// S3 or the directory standing in for it.
    Objects,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Scylla => "scylla",
            Backend::Redis => "redis",
            Backend::Objects => "object storage",
        })
    }
}

/// Everything that can go wrong below the domain. Driver errors are kept as
/// sources for logs; callers map the variant, never the driver's text, to a
/// client-facing status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or dropped the connection.
    #[error("{backend} is unavailable")]
    Unavailable {
        backend: Backend,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A SERIALIZABLE transaction kept conflicting after every retry.
    #[error("transaction still conflicted after {attempts} attempts")]
    Conflict { attempts: u32 },
    /// The store answered with an error that is not about availability.
    #[error("{backend} query failed")]
    Query {
        backend: Backend,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query the caller should not have made, e.g. a search radius out of
    /// range.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Stored data that cannot be read back: a bug or a manual edit.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A migration file applied earlier has different contents now.
    #[error(
        "migration {name} was applied with checksum {applied} but the file now has checksum {current}; \
         applied migrations must never be edited, add a new one instead"
    )]
    MigrationEdited { name: String, applied: String, current: String },
    /// A migration recorded as applied is missing from this build.
    #[error("migration {name} is recorded as applied but is not part of this build")]
    MigrationUnknown { name: String },
    /// This migrator stopped holding the migrations lease (its renewal
    /// failed, or it expired and another migrator took it).
    #[error("the migrations lease was lost before every migration was applied; run the migrations again")]
    MigrationLeaseLost,
    /// A migration failed to apply.
    #[error("migration {name} failed")]
    MigrationFailed {
        name: String,
        #[source]
        source: Box<StoreError>,
    },
}

impl StoreError {
    /// Classes by SQLSTATE what a client can do about it: retry later
    /// (connection lost; 08 connection exception, 53 insufficient resources,
    /// 57 operator intervention such as a node draining or a statement
    /// timeout), retry now (a serialization failure or deadlock that reached
    /// no retry loop: CockroachDB runs every statement SERIALIZABLE), or
    /// nothing (a query error: a bug).
    pub(crate) fn postgres(err: tokio_postgres::Error) -> Self {
        let class = err.code().map(|code| &code.code()[..2]);
        if err.is_closed() || err.as_db_error().is_none() || matches!(class, Some("08" | "53" | "57")) {
            StoreError::Unavailable { backend: Backend::Postgres, source: Box::new(err) }
        } else if matches!(err.code(), Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
        {
            StoreError::Conflict { attempts: 1 }
        } else {
            StoreError::Query { backend: Backend::Postgres, source: Box::new(err) }
        }
    }

    pub(crate) fn postgres_pool(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(err) => Self::postgres(err),
            other => StoreError::Unavailable { backend: Backend::Postgres, source: Box::new(other) },
        }
    }

    pub(crate) fn redis(err: ::redis::RedisError) -> Self {
        if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() || err.is_timeout() {
            StoreError::Unavailable { backend: Backend::Redis, source: Box::new(err) }
        } else {
            StoreError::Query { backend: Backend::Redis, source: Box::new(err) }
        }
    }

    pub(crate) fn scylla_unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable { backend: Backend::Scylla, source: Box::new(err) }
    }

    pub(crate) fn scylla_query(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Query { backend: Backend::Scylla, source: Box::new(err) }
    }
}

/// Displays an error with all its sources, `outer: inner: innermost`, for
/// logs (the `Display` of each error names only itself).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = StoreError::MigrationFailed {
            name: "0001_init.sql".into(),
            source: Box::new(StoreError::Unavailable { backend: Backend::Redis, source: Box::new(io) }),
        };
        assert_eq!(Chain(&err).to_string(), "migration 0001_init.sql failed: redis is unavailable: connection refused");
    }

    #[tokio::test]
    async fn postgres_errors_are_classed_by_sqlstate() {
        // The testkit's config type is another build of this crate's: connect by URL.
        let url = foodfast_testkit::fresh_postgres().await.url;
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let raise = async |sqlstate: &str| {
            let statement = format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{sqlstate}'; END $$");
            StoreError::postgres(client.batch_execute(&statement).await.unwrap_err())
        };
        for sqlstate in ["40001", "40P01"] {
            assert!(matches!(raise(sqlstate).await, StoreError::Conflict { .. }), "{sqlstate}");
        }
        for sqlstate in ["08006", "53300", "57P01", "57014"] {
            assert!(matches!(raise(sqlstate).await, StoreError::Unavailable { .. }), "{sqlstate}");
        }
        for sqlstate in ["23505", "42703", "XX000"] {
            assert!(matches!(raise(sqlstate).await, StoreError::Query { .. }), "{sqlstate}");
        }
    }
}
