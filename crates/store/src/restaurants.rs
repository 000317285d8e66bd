//! Restaurants and their menus on CockroachDB, with the menu served from a
//! Redis cache that a failing Redis never turns into an error.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::address::Address;
use foodfast_domain::geo::{self, LatLng, SearchResolution};
use foodfast_domain::hours::OpeningHours;
use foodfast_domain::menu::{Customization, Menu, MenuCategory, MenuItem};
use foodfast_domain::money::Currency;
use foodfast_domain::restaurant::RestaurantProfile;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::postgres::{Postgres, TxError};
use crate::redis::Redis;
use crate::{StoreError, sql};

/// A stored restaurant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restaurant {
    pub id: Uuid,
    pub profile: RestaurantProfile,
    pub rating: f64,
    pub rating_count: u32,
    pub image_url: String,
    pub menu_version: i64,
    pub menu_updated_at: DateTime<Utc>,
    /// Bumped by every change to the restaurant or its menu.
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A restaurant with its whole current menu, as `GetMenu` serves it (and
/// the cache keeps it, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MenuSnapshot {
    pub restaurant: Restaurant,
    pub menu: Menu,
}

/// A restaurant found by `search`, with its exact distance.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub restaurant: Restaurant,
    pub distance_m: u32,
}

/// A hit ranked by (distance, id): the order of search results.
struct Ranked(SearchHit);

impl Ranked {
    fn key(&self) -> (u32, Uuid) {
        (self.0.distance_m, self.0.restaurant.id)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// A search: restaurants within `radius_m` of `center` that also deliver
/// there, optionally of one cuisine and open at `open_at`.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub center: LatLng,
    pub radius_m: u32,
    pub cuisine: Option<String>,
    pub open_at: Option<DateTime<Utc>>,
    /// Keyset: only hits strictly after this (distance, id).
    pub after: Option<(u32, Uuid)>,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MenuUpdateError {
    #[error("restaurant {0} does not exist")]
    RestaurantNotFound(Uuid),
    #[error("the menu is at version {current}, not {expected}: reload it and apply the change again")]
    VersionMismatch { expected: i64, current: i64 },
    #[error("menu item {0} belongs to another restaurant")]
    ForeignItem(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileUpdateError {
    #[error("restaurant {0} does not exist")]
    RestaurantNotFound(Uuid),
    #[error("the menu's prices are in {current}; the currency is fixed while the menu has items")]
    CurrencyFixed { current: String },
    /// Someone else changed the restaurant since it was read at `expected`.
    #[error("the restaurant changed since revision {expected}")]
    Changed { expected: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Restaurants {
    postgres: Postgres,
    redis: Redis,
    menu_cache_ttl: Duration,
}

impl Restaurants {
    pub fn new(postgres: Postgres, redis: Redis, menu_cache_ttl: Duration) -> Self {
        Self { postgres, redis, menu_cache_ttl }
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Restaurants.create", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn create(&self, profile: &RestaurantProfile) -> Result<Restaurant, StoreError> {
        let client = self.postgres.client().await?;
        let mut params = ProfileParams::new(profile);
        let row = client
            .query_one(sql::INSERT_RESTAURANT, &params.with_id(Uuid::new_v4()))
            .await
            .map_err(StoreError::postgres)?;
        restaurant_from_row(&row)
    }

    /// Replaces the profile, over the restaurant as it was at
    /// `expected_revision` (when it was read): a change made since is not
    /// overwritten ([`ProfileUpdateError::Changed`]).
    #[tracing::instrument(target = "foodfast::trace", name = "Restaurants.update", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn update(
        &self,
        id: Uuid,
        profile: &RestaurantProfile,
        expected_revision: i64,
    ) -> Result<Restaurant, ProfileUpdateError> {
        let client = self.postgres.client().await?;
        let mut params = ProfileParams::new(profile);
        let mut params = params.with_id(id).to_vec();
        params.push(&expected_revision);
        let row = client
            .query_opt(&client.prepare_cached(sql::UPDATE_RESTAURANT).await.map_err(StoreError::postgres)?, &params)
            .await
            .map_err(StoreError::postgres)?;
        match row {
            Some(row) => Ok(restaurant_from_row(&row)?),
            // Refused or missing: the restaurant as it is says which.
            None => match self.get(id).await? {
                Some(current) if current.revision != expected_revision => {
                    Err(ProfileUpdateError::Changed { expected: expected_revision })
                }
                Some(current) => {
                    Err(ProfileUpdateError::CurrencyFixed { current: current.profile.currency.to_string() })
                }
                None => Err(ProfileUpdateError::RestaurantNotFound(id)),
            },
        }
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Restaurants.get", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn get(&self, id: Uuid) -> Result<Option<Restaurant>, StoreError> {
        let client = self.postgres.client().await?;
        let row = client
            .query_opt(&client.prepare_cached(sql::SELECT_RESTAURANT).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?;
        row.as_ref().map(restaurant_from_row).transpose()
    }

    /// Candidates come from the H3 cells covering the circle (of the
    /// cuisine asked for); the exact distance then decides, and hits are
    /// ordered by (distance, id) so that pages are stable. Rows are read as
    /// a stream and only the best `limit` kept, so memory follows the page,
    /// not how many restaurants a dense city has in the circle.
    #[tracing::instrument(target = "foodfast::trace", name = "Restaurants.search", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, StoreError> {
        use futures::TryStreamExt;

        let cells =
            geo::search_cells(query.center, query.radius_m).map_err(|err| StoreError::InvalidQuery(err.to_string()))?;
        let statement = match cells.resolution {
            SearchResolution::Res6 => sql::SEARCH_RESTAURANTS_RES6,
            SearchResolution::Res8 => sql::SEARCH_RESTAURANTS_RES8,
        };
        let client = self.postgres.client().await?;
        let statement = client.prepare_cached(statement).await.map_err(StoreError::postgres)?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&cells.cells, &query.cuisine];
        let rows = client.query_raw(&statement, params).await.map_err(StoreError::postgres)?;
        let mut rows = std::pin::pin!(rows);
        let mut best = std::collections::BinaryHeap::with_capacity(query.limit + 1);
        while let Some(row) = rows.try_next().await.map_err(StoreError::postgres)? {
            let restaurant = restaurant_from_row(&row)?;
            let distance_m = geo::distance_m(query.center, restaurant.profile.address.location).round() as u32;
            let profile = &restaurant.profile;
            let wanted = distance_m <= query.radius_m
                && distance_m <= profile.delivery_radius_m
                && query.open_at.is_none_or(|at| profile.is_open(at))
                && query.after.is_none_or(|after| (distance_m, restaurant.id) > after);
            if wanted {
                best.push(Ranked(SearchHit { restaurant, distance_m }));
                if best.len() > query.limit {
                    best.pop();
                }
            }
        }
        Ok(best.into_sorted_vec().into_iter().map(|Ranked(hit)| hit).collect())
    }

    /// The restaurant and its menu, from the cache when it has them. Any
    /// cache failure falls back to the database.
    #[tracing::instrument(target = "foodfast::trace", name = "Restaurants.menu", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn menu(&self, id: Uuid) -> Result<Option<MenuSnapshot>, StoreError> {
        let key = menu_cache_key(id);
        match self.cached_menu(&key).await {
            Ok(Some(snapshot)) => {
                crate::metrics::cache_lookup("menu", "hit");
                return Ok(Some(snapshot));
            }
            Ok(None) => crate::metrics::cache_lookup("menu", "miss"),
            Err(err) => {
                crate::metrics::cache_lookup("menu", "error");
                tracing::warn!(restaurant = %id, error = %crate::Chain(&err), "menu cache read failed")
            }
        }
        let Some(snapshot) = self.menu_from_database(id).await? else { return Ok(None) };
        if let Err(err) = self.cache_menu(&key, &snapshot).await {
            tracing::warn!(restaurant = %id, error = %crate::Chain(&err), "menu cache write failed");
        }
        Ok(Some(snapshot))
    }

    /// Replaces the whole menu. Items left out are archived, not deleted
    /// (past orders point at them). `expected_version`, when given, must be
    /// the current menu version.
    #[tracing::instrument(target = "foodfast::trace", name = "Restaurants.upsert_menu", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn upsert_menu(
        &self,
        id: Uuid,
        menu: &Menu,
        expected_version: Option<i64>,
    ) -> Result<MenuSnapshot, MenuUpdateError> {
        let outcome = self
            .postgres
            .serializable(|tx| {
                let menu = menu.clone();
                Box::pin(async move {
                    let Some(row) = tx.query_opt(sql::LOCK_MENU_VERSION, &[&id]).await? else {
                        return Ok(Err(MenuUpdateError::RestaurantNotFound(id)));
                    };
                    let current: i64 = row.get(0);
                    if let Some(expected) = expected_version.filter(|expected| *expected != current) {
                        return Ok(Err(MenuUpdateError::VersionMismatch { expected, current }));
                    }
                    // Refused before anything is written: a refusal commits nothing.
                    let item_ids: Vec<Uuid> =
                        menu.categories.iter().flat_map(|c| c.items.iter().map(|i| i.id)).collect();
                    if let Some(foreign) = tx.query_opt(sql::SELECT_FOREIGN_MENU_ITEM, &[&id, &item_ids]).await? {
                        return Ok(Err(MenuUpdateError::ForeignItem(foreign.get(0))));
                    }
                    tx.execute(sql::DELETE_MENU_CATEGORIES, &[&id]).await?;
                    tx.execute(sql::ARCHIVE_MENU_ITEMS, &[&id]).await?;
                    let mut item_position = 0i32;
                    for (category_position, category) in menu.categories.iter().enumerate() {
                        let position = category_position as i32;
                        tx.execute(sql::INSERT_MENU_CATEGORY, &[&category.id, &id, &category.name, &position]).await?;
                        for item in &category.items {
                            let customizations = Json(&item.customizations);
                            let written = tx
                                .execute(
                                    sql::UPSERT_MENU_ITEM,
                                    &[
                                        &item.id,
                                        &id,
                                        &category.id,
                                        &item_position,
                                        &item.name,
                                        &item.description,
                                        &item.price,
                                        &item.available,
                                        &item.image_url,
                                        &customizations,
                                    ],
                                )
                                .await?;
                            if written == 0 {
                                // Checked above, in this SERIALIZABLE transaction: roll back.
                                let message = format!("menu item {} moved to another restaurant mid-update", item.id);
                                return Err(TxError::Store(StoreError::Corrupt(message)));
                            }
                            item_position += 1;
                        }
                    }
                    tx.execute(sql::BUMP_MENU_VERSION, &[&id]).await?;
                    Ok::<_, TxError>(Ok(()))
                })
            })
            .await?;
        outcome?;
        let snapshot = self.menu_from_database(id).await?.ok_or(MenuUpdateError::RestaurantNotFound(id))?;
        if let Err(err) = self.cache_menu(&menu_cache_key(id), &snapshot).await {
            // The revision check keeps an older cached menu from winning, and
            // the TTL bounds how long it can be served.
            tracing::warn!(restaurant = %id, error = %crate::Chain(&err), "menu cache refresh failed");
        }
        Ok(snapshot)
    }

    /// Reads the menu into the cache again after a change made elsewhere
    /// (a new image), which moved the restaurant's revision on.
    #[tracing::instrument(target = "foodfast::trace", name = "Restaurants.refresh_cached_menu", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn refresh_cached_menu(&self, id: Uuid) -> Result<(), StoreError> {
        if let Some(snapshot) = self.menu_from_database(id).await? {
            self.cache_menu(&menu_cache_key(id), &snapshot).await?;
        }
        Ok(())
    }

    /// The restaurant's current (not archived) items among `ids`, by id.
    #[tracing::instrument(target = "foodfast::trace", name = "Restaurants.items", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn items(&self, restaurant_id: Uuid, ids: &[Uuid]) -> Result<HashMap<Uuid, MenuItem>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client
            .query(
                &client.prepare_cached(sql::SELECT_MENU_ITEMS_BY_ID).await.map_err(StoreError::postgres)?,
                &[&restaurant_id, &ids],
            )
            .await
            .map_err(StoreError::postgres)?;
        rows.iter().map(|row| menu_item_from_row(row).map(|(_, item)| (item.id, item))).collect()
    }

    async fn menu_from_database(&self, id: Uuid) -> Result<Option<MenuSnapshot>, StoreError> {
        let client = self.postgres.client().await?;
        let Some(row) = client
            .query_opt(&client.prepare_cached(sql::SELECT_RESTAURANT).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?
        else {
            return Ok(None);
        };
        let restaurant = restaurant_from_row(&row)?;
        let categories = client
            .query(&client.prepare_cached(sql::SELECT_MENU_CATEGORIES).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?;
        let items = client
            .query(&client.prepare_cached(sql::SELECT_MENU_ITEMS).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?;
        let mut categories: Vec<MenuCategory> =
            categories.iter().map(|row| MenuCategory { id: row.get(0), name: row.get(1), items: Vec::new() }).collect();
        for row in &items {
            let (category_id, item) = menu_item_from_row(row)?;
            if let Some(category) = categories.iter_mut().find(|c| c.id == category_id) {
                category.items.push(item);
            }
        }
        Ok(Some(MenuSnapshot { restaurant, menu: Menu { categories } }))
    }

    async fn cached_menu(&self, key: &str) -> Result<Option<MenuSnapshot>, StoreError> {
        let mut connection = self.redis.connection();
        let cached: Option<Vec<u8>> =
            ::redis::cmd("GET").arg(key).query_async(&mut connection).await.map_err(StoreError::redis)?;
        let Some(cached) = cached else { return Ok(None) };
        let Some(split) = cached.iter().position(|b| *b == b'|') else { return Ok(None) };
        serde_json::from_slice(&cached[split + 1..])
            .map(Some)
            .map_err(|err| StoreError::Corrupt(format!("cached menu {key}: {err}")))
    }

    async fn cache_menu(&self, key: &str, snapshot: &MenuSnapshot) -> Result<(), StoreError> {
        let json = serde_json::to_vec(snapshot)
            .map_err(|err| StoreError::Corrupt(format!("menu of {}: {err}", snapshot.restaurant.id)))?;
        let mut connection = self.redis.connection();
        let _: i32 = SET_IF_NEWER
            .key(key)
            .arg(snapshot.restaurant.revision)
            .arg(json)
            .arg(self.menu_cache_ttl.as_millis() as u64)
            .invoke_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(())
    }
}

fn menu_cache_key(restaurant_id: Uuid) -> String {
    format!("ff:menu:{restaurant_id}")
}

/// Stores `revision|json` unless the key already holds a higher revision, so
/// a reader that loaded an older menu can never overwrite a newer one.
static SET_IF_NEWER: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    ::redis::Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        if current then
            local revision = tonumber(string.match(current, '^(%d+)|'))
            if revision and revision > tonumber(ARGV[1]) then return 0 end
        end
        redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
        return 1
        ",
    )
});

/// The profile's columns, shared by insert and update ($2..$15).
struct ProfileParams {
    name: String,
    phone: String,
    address: Json<Address>,
    lat: f64,
    lng: f64,
    res6: i64,
    res8: i64,
    cuisines: Vec<String>,
    time_zone: String,
    opening_hours: Json<OpeningHours>,
    delivery_radius_m: i32,
    prep_time_s: i32,
    currency: String,
    paused: bool,
    id: Uuid,
}

impl ProfileParams {
    fn new(profile: &RestaurantProfile) -> Self {
        let cells = geo::index_cells(profile.address.location);
        Self {
            name: profile.name.clone(),
            phone: profile.phone.clone(),
            address: Json(profile.address.clone()),
            lat: profile.address.location.lat,
            lng: profile.address.location.lng,
            res6: cells.res6,
            res8: cells.res8,
            cuisines: profile.cuisines.clone(),
            time_zone: profile.time_zone.name().to_string(),
            opening_hours: Json(profile.opening_hours.clone()),
            delivery_radius_m: profile.delivery_radius_m as i32,
            prep_time_s: profile.prep_time.as_secs() as i32,
            currency: profile.currency.as_str().to_string(),
            paused: profile.paused,
            id: Uuid::nil(),
        }
    }

    fn with_id(&mut self, id: Uuid) -> [&(dyn tokio_postgres::types::ToSql + Sync); 15] {
        self.id = id;
        [
            &self.id,
            &self.name,
            &self.phone,
            &self.address,
            &self.lat,
            &self.lng,
            &self.res6,
            &self.res8,
            &self.cuisines,
            &self.time_zone,
            &self.opening_hours,
            &self.delivery_radius_m,
            &self.prep_time_s,
            &self.currency,
            &self.paused,
        ]
    }
}

/// Reads the columns of `sql::restaurant_columns!` in their order.
fn restaurant_from_row(row: &Row) -> Result<Restaurant, StoreError> {
    let corrupt =
        |what: &str, err: String| StoreError::Corrupt(format!("restaurant {}: {what}: {err}", row.get::<_, Uuid>(0)));
    let Json(address): Json<Address> = row.get(3);
    let time_zone: String = row.get(5);
    let Json(opening_hours): Json<OpeningHours> = row.get(6);
    let currency: String = row.get(9);
    let profile = RestaurantProfile {
        name: row.get(1),
        phone: row.get(2),
        address,
        cuisines: row.get(4),
        time_zone: time_zone.parse().map_err(|err: chrono_tz::ParseError| corrupt("time zone", err.to_string()))?,
        opening_hours,
        delivery_radius_m: row.get::<_, i32>(7) as u32,
        prep_time: Duration::from_secs(row.get::<_, i32>(8) as u64),
        currency: Currency::new(&currency).map_err(|err| corrupt("currency", err.to_string()))?,
        paused: row.get(10),
    };
    Ok(Restaurant {
        id: row.get(0),
        profile,
        rating: row.get(11),
        rating_count: row.get::<_, i32>(12) as u32,
        image_url: row.get(13),
        menu_version: row.get(14),
        menu_updated_at: row.get(15),
        revision: row.get(16),
        created_at: row.get(17),
        updated_at: row.get(18),
    })
}

/// Reads `id, category_id, name, description, price, available, image_url,
/// customizations`.
fn menu_item_from_row(row: &Row) -> Result<(Uuid, MenuItem), StoreError> {
    let Json(customizations): Json<Vec<Customization>> = row.get(7);
    let price: Decimal = row.get(4);
    Ok((
        row.get(1),
        MenuItem {
            id: row.get(0),
            name: row.get(2),
            description: row.get(3),
            price,
            available: row.get(5),
            image_url: row.get(6),
            customizations,
        },
    ))
}
