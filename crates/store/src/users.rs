//! Accounts, as far as orders need them today: who a customer or a staff
//! member is. Registration and login come with the accounts issue.

use uuid::Uuid;

use crate::postgres::Postgres;
use crate::{StoreError, sql};

/// One of the roles `users.role` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRole {
    Customer,
    RestaurantStaff,
    Driver,
    Support,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Customer => "customer",
            UserRole::RestaurantStaff => "restaurant_staff",
            UserRole::Driver => "driver",
            UserRole::Support => "support",
            UserRole::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub phone: Option<&'a str>,
    pub name: &'a str,
    pub role: UserRole,
    /// A PHC string; `!` for an account that cannot log in yet.
    pub password_hash: &'a str,
    pub restaurant_id: Option<Uuid>,
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

#[derive(Clone)]
pub struct Users {
    postgres: Postgres,
}

impl Users {
    pub fn new(postgres: Postgres) -> Self {
        Self { postgres }
    }

    pub async fn create(&self, user: &NewUser<'_>) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        let client = self.postgres.client().await?;
        client
            .execute(
                sql::INSERT_USER,
                &[
                    &id,
                    &user.email,
                    &user.phone,
                    &user.name,
                    &user.role.as_str(),
                    &user.password_hash,
                    &user.restaurant_id,
                ],
            )
            .await
            .map_err(StoreError::postgres)?;
        Ok(id)
    }

    /// The id, role and restaurant of the account with this email.
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

    /// Makes a driver account a driver: its home city, vehicle and how many
    /// deliveries it may hold at once.
    pub async fn add_driver(&self, user_id: Uuid, city: &str, vehicle: &str, capacity: i32) -> Result<(), StoreError> {
        let client = self.postgres.client().await?;
        client
            .execute(sql::INSERT_DRIVER, &[&user_id, &city, &vehicle, &capacity])
            .await
            .map_err(StoreError::postgres)?;
        Ok(())
    }

    /// The driver's name, vehicle and load, if `id` is a driver.
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

    pub async fn name(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        let client = self.postgres.client().await?;
        let row = client
            .query_opt(&client.prepare_cached(sql::SELECT_USER_NAME).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?;
        Ok(row.map(|row| row.get(0)))
    }
}
