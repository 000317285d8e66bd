//! Accounts: who a customer, a staff member, a driver, support or an admin
//! is, their password hash and profile; and their refresh tokens (stored
//! hashed, rotated on every use, revocable).

use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::access::Role;
use foodfast_domain::address::Address;
use foodfast_domain::device::Platform;
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::postgres::{Postgres, TxError};
use crate::{StoreError, sql};

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub phone: Option<&'a str>,
    pub name: &'a str,
    pub role: Role,
    /// A PHC string; `!` for an account that cannot log in yet.
    pub password_hash: &'a str,
    pub restaurant_id: Option<Uuid>,
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub phone: Option<String>,
    pub name: String,
    pub role: Role,
    /// A PHC string, or `!` for no password.
    pub password_hash: String,
    pub restaurant_id: Option<Uuid>,
    pub default_address: Option<Address>,
    /// The processed avatar image's URL; empty until one is uploaded.
    pub avatar_url: String,
    pub created_at: DateTime<Utc>,
}

/// The fields of a profile its owner may change.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileUpdate {
    pub name: String,
    pub phone: Option<String>,
    pub default_address: Option<Address>,
}

/// Why an account was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a refresh token was not exchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRefused {
    #[error("the refresh token is not known")]
    Unknown,
    #[error("the refresh token has expired")]
    Expired,
    /// It was revoked (logout), or already used: a second use means a copy
    /// leaked, so every token of the account is revoked.
    #[error("the refresh token was revoked")]
    Revoked,
}

/// A driver as customers, restaurants and ops see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverProfile {
    pub id: Uuid,
    pub name: String,
    pub vehicle: String,
    pub city: String,
    pub capacity: u32,
    pub active_deliveries: u32,
}

/// How long after a rotation the old refresh token may come back without
/// being taken for a stolen copy (it is refused either way).
const REFRESH_REUSE_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

#[derive(Clone)]
pub struct Users {
    postgres: Postgres,
}

impl Users {
    pub fn new(postgres: Postgres) -> Self {
        Self { postgres }
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Users.create", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn create(&self, user: &NewUser<'_>) -> Result<Uuid, CreateUserError> {
        let id = Uuid::new_v4();
        let role = user.role.as_str();
        self.insert_account(
            sql::INSERT_USER,
            &[&id, &user.email, &user.phone, &user.name, &role, &user.password_hash, &user.restaurant_id],
        )
        .await?;
        Ok(id)
    }

    /// Creates a driver's account with its drivers row (home city, vehicle,
    /// capacity) in one statement, so that no driver exists without it.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.create_driver", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn create_driver(
        &self,
        user: &NewUser<'_>,
        city: &str,
        vehicle: &str,
        capacity: i32,
    ) -> Result<Uuid, CreateUserError> {
        let id = Uuid::new_v4();
        let role = user.role.as_str();
        self.insert_account(
            sql::INSERT_DRIVER_ACCOUNT,
            &[
                &id,
                &user.email,
                &user.phone,
                &user.name,
                &role,
                &user.password_hash,
                &user.restaurant_id,
                &city,
                &vehicle,
                &capacity,
            ],
        )
        .await?;
        Ok(id)
    }

    async fn insert_account(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), CreateUserError> {
        let client = self.postgres.client().await?;
        match client.execute(statement, params).await {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(CreateUserError::EmailTaken),
            Err(err) => Err(StoreError::postgres(err).into()),
        }
    }

    /// The account signing in with `email` (lower-cased by the caller).
    #[tracing::instrument(target = "foodfast::trace", name = "Users.account_by_email", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        self.account_where(sql::SELECT_ACCOUNT_BY_EMAIL, &email).await
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Users.account", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn account(&self, id: Uuid) -> Result<Option<Account>, StoreError> {
        self.account_where(sql::SELECT_ACCOUNT, &id).await
    }

    async fn account_where(
        &self,
        statement: &str,
        key: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<Account>, StoreError> {
        let client = self.postgres.client().await?;
        let statement = client.prepare_cached(statement).await.map_err(StoreError::postgres)?;
        let row = client.query_opt(&statement, &[key]).await.map_err(StoreError::postgres)?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// Changes the profile of account `id`; `None` if there is no such account.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.update_profile", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn update_profile(&self, id: Uuid, update: &ProfileUpdate) -> Result<Option<Account>, StoreError> {
        let client = self.postgres.client().await?;
        let address = update.default_address.as_ref().map(Json);
        let row = client
            .query_opt(sql::UPDATE_PROFILE, &[&id, &update.name, &update.phone, &address])
            .await
            .map_err(StoreError::postgres)?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// Stores a new refresh token (its hash) for `user_id`, valid for `ttl`.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.issue_refresh_token", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn issue_refresh_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        ttl: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        let expires_at = Utc::now() + ttl;
        let client = self.postgres.client().await?;
        client
            .execute(sql::INSERT_REFRESH_TOKEN, &[&Uuid::new_v4(), &user_id, &token_hash, &expires_at])
            .await
            .map_err(StoreError::postgres)?;
        Ok(expires_at)
    }

    /// Exchanges the refresh token `old_hash` for `new_hash` (valid for
    /// `ttl`) in one transaction: the old one is revoked and names the new.
    /// Returns the account and the new token's expiry.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.rotate_refresh_token", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        ttl: Duration,
    ) -> Result<Result<(Uuid, DateTime<Utc>), RefreshRefused>, StoreError> {
        let old_hash = old_hash.to_string();
        let new_hash = new_hash.to_string();
        self.postgres
            .serializable(move |tx| {
                let (old_hash, new_hash) = (old_hash.clone(), new_hash.clone());
                Box::pin(async move {
                    let Some(row) = tx.query_opt(sql::SELECT_REFRESH_TOKEN, &[&old_hash]).await? else {
                        return Ok(Err(RefreshRefused::Unknown));
                    };
                    let (id, user_id): (Uuid, Uuid) = (row.get(0), row.get(1));
                    let expires_at: DateTime<Utc> = row.get(2);
                    let revoked_at: Option<DateTime<Utc>> = row.get(3);
                    if let Some(revoked_at) = revoked_at {
                        let replaced_by: Option<Uuid> = row.get(4);
                        // Reuse of a rotated token: someone else holds a copy. Unless it comes
                        // within moments of the rotation: the same app retrying a refresh whose
                        // answer it lost, or two tabs refreshing at once.
                        if replaced_by.is_some() && revoked_at < Utc::now() - REFRESH_REUSE_GRACE {
                            tx.execute(sql::REVOKE_USER_REFRESH_TOKENS, &[&user_id]).await?;
                        }
                        return Ok(Err(RefreshRefused::Revoked));
                    }
                    if expires_at <= Utc::now() {
                        return Ok(Err(RefreshRefused::Expired));
                    }
                    let new_id = Uuid::new_v4();
                    let new_expiry = Utc::now() + ttl;
                    tx.execute(sql::INSERT_REFRESH_TOKEN, &[&new_id, &user_id, &new_hash, &new_expiry]).await?;
                    tx.execute(sql::REPLACE_REFRESH_TOKEN, &[&id, &new_id]).await?;
                    Ok::<_, TxError>(Ok((user_id, new_expiry)))
                })
            })
            .await
    }

    /// Revokes the refresh token `token_hash`, or with `all_sessions` every
    /// token of its account. `false` if the token is not known or no longer
    /// live (revoked, rotated or expired): an old token found in a backup
    /// signs nobody out.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.revoke_refresh_token", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn revoke_refresh_token(&self, token_hash: &str, all_sessions: bool) -> Result<bool, StoreError> {
        let client = self.postgres.client().await?;
        let Some(row) =
            client.query_opt(sql::SELECT_REFRESH_TOKEN, &[&token_hash]).await.map_err(StoreError::postgres)?
        else {
            return Ok(false);
        };
        let (id, user_id): (Uuid, Uuid) = (row.get(0), row.get(1));
        let (expires_at, revoked_at): (DateTime<Utc>, Option<DateTime<Utc>>) = (row.get(2), row.get(3));
        if revoked_at.is_some() || expires_at <= Utc::now() {
            return Ok(false);
        }
        let (statement, key) =
            if all_sessions { (sql::REVOKE_USER_REFRESH_TOKENS, user_id) } else { (sql::REVOKE_REFRESH_TOKEN, id) };
        client.execute(statement, &[&key]).await.map_err(StoreError::postgres)?;
        Ok(true)
    }

    /// The id, role and restaurant of the account with this email.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.by_email", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn by_email(&self, email: &str) -> Result<Option<(Uuid, String, Option<Uuid>)>, StoreError> {
        let client = self.postgres.client().await?;
        let row = client
            .query_opt(
                &client.prepare_cached(sql::SELECT_USER_BY_EMAIL).await.map_err(StoreError::postgres)?,
                &[&email],
            )
            .await
            .map_err(StoreError::postgres)?;
        Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
    }

    /// Registers `push_token` for the account's push notifications; the same
    /// token again (from this account or another) keeps its id and moves to
    /// `user_id`.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.register_device", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn register_device(
        &self,
        user_id: Uuid,
        platform: Platform,
        push_token: &str,
    ) -> Result<Uuid, StoreError> {
        let client = self.postgres.client().await?;
        let row = client
            .query_one(
                sql::UPSERT_DEVICE,
                &[&Uuid::new_v4(), &push_token_hash(push_token), &user_id, &platform.as_str(), &push_token],
            )
            .await
            .map_err(StoreError::postgres)?;
        Ok(row.get(0))
    }

    /// Removes `user_id`'s registration of `push_token`. Returns whether
    /// there was one (a token registered by another account stays theirs).
    #[tracing::instrument(target = "foodfast::trace", name = "Users.unregister_device", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn unregister_device(&self, user_id: Uuid, push_token: &str) -> Result<bool, StoreError> {
        let removed = self.postgres.statement(sql::DELETE_DEVICE, &[&push_token_hash(push_token), &user_id]).await?;
        Ok(!removed.is_empty())
    }

    /// Makes a driver account a driver: its home city, vehicle and how many
    /// deliveries it may hold at once.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.add_driver", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn add_driver(&self, user_id: Uuid, city: &str, vehicle: &str, capacity: i32) -> Result<(), StoreError> {
        let client = self.postgres.client().await?;
        client
            .execute(sql::INSERT_DRIVER, &[&user_id, &city, &vehicle, &capacity])
            .await
            .map_err(StoreError::postgres)?;
        Ok(())
    }

    /// The driver's name, vehicle and load, if `id` is a driver.
    #[tracing::instrument(target = "foodfast::trace", name = "Users.driver", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn driver(&self, id: Uuid) -> Result<Option<DriverProfile>, StoreError> {
        let client = self.postgres.client().await?;
        let row = client
            .query_opt(&client.prepare_cached(sql::SELECT_DRIVER_PROFILE).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?;
        Ok(row.map(|row| DriverProfile {
            id,
            name: row.get(0),
            vehicle: row.get(1),
            city: row.get(2),
            capacity: row.get::<_, i32>(3).max(0) as u32,
            active_deliveries: row.get::<_, i32>(4).max(0) as u32,
        }))
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Users.name", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn name(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        let client = self.postgres.client().await?;
        let row = client
            .query_opt(&client.prepare_cached(sql::SELECT_USER_NAME).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?;
        Ok(row.map(|row| row.get(0)))
    }
}

fn account_from_row(row: &Row) -> Result<Account, StoreError> {
    let role: String = row.get(4);
    let address: Option<Json<Address>> = row.get(7);
    Ok(Account {
        id: row.get(0),
        email: row.get(1),
        phone: row.get(2),
        name: row.get(3),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("account role {role:?}")))?,
        password_hash: row.get(5),
        restaurant_id: row.get(6),
        default_address: address.map(|Json(address)| address),
        created_at: row.get(8),
        avatar_url: row.get(9),
    })
}

/// Devices are found by their token's hash: the token itself may be long.
fn push_token_hash(push_token: &str) -> String {
    hex::encode(Sha256::digest(push_token.as_bytes()))
}
