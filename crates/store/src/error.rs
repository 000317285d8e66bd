use std::fmt;

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
    pub(crate) fn postgres(err: tokio_postgres::Error) -> Self {
        if err.is_closed() || err.as_db_error().is_none() {
            StoreError::Unavailable { backend: Backend::Postgres, source: Box::new(err) }
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
}
