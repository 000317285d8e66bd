//! Drivers' live state in Redis: the latest position in its city's geo set
//! (`GEOSEARCH` for dispatch), a small hash per driver, and a pub/sub message
//! per accepted ping for tracking subscribers on any replica.

use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::geo::LatLng;
use foodfast_domain::ping::Ping;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;
use crate::redis::Redis;

/// A driver's hash expires when its app has been silent this long, so
/// vanished drivers leave the live state by themselves.
const DRIVER_STATE_TTL: Duration = Duration::from_secs(3600);

/// The channel a driver's positions are published on.
pub fn location_channel(driver_id: Uuid) -> String {
    format!("ff:loc:{driver_id}")
}

fn city_key(city: &str) -> String {
    format!("ff:geo:{city}")
}

fn driver_key(driver_id: Uuid) -> String {
    format!("ff:driver:{driver_id}")
}

/// What subscribers receive for each accepted ping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LivePosition {
    pub driver_id: Uuid,
    pub seq: u64,
    pub position: LatLng,
    pub heading_deg: Option<f32>,
    pub speed_mps: Option<f32>,
    pub recorded_at: DateTime<Utc>,
    /// When the server accepted it: the start of the ping → screen latency.
    pub received_at: DateTime<Utc>,
}

/// Moves the driver to its new city's set if the city changed, then updates
/// position, hash and expiry, and publishes: one round trip, atomic.
static UPDATE: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    ::redis::Script::new(
        r"
        local previous = redis.call('HGET', KEYS[1], 'city')
        if previous and previous ~= ARGV[1] then
            redis.call('ZREM', 'ff:geo:' .. previous, ARGV[2])
        end
        redis.call('GEOADD', KEYS[2], ARGV[3], ARGV[4], ARGV[2])
        redis.call('HSET', KEYS[1], 'city', ARGV[1], 'seq', ARGV[5], 'position', ARGV[6])
        redis.call('EXPIRE', KEYS[1], ARGV[7])
        redis.call('PUBLISH', KEYS[3], ARGV[6])
        return 1
        ",
    )
});

#[derive(Clone)]
pub struct LivePositions {
    redis: Redis,
}

impl LivePositions {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Makes `ping` the driver's live position in `city` and publishes it.
    pub async fn update(
        &self,
        driver_id: Uuid,
        city: &str,
        ping: &Ping,
        received_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let live = LivePosition {
            driver_id,
            seq: ping.seq,
            position: ping.position,
            heading_deg: ping.heading_deg,
            speed_mps: ping.speed_mps,
            recorded_at: ping.recorded_at,
            received_at,
        };
        let payload = serde_json::to_string(&live).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let mut connection = self.redis.connection();
        let _: i32 = UPDATE
            .key(driver_key(driver_id))
            .key(city_key(city))
            .key(location_channel(driver_id))
            .arg(city)
            .arg(driver_id.to_string())
            .arg(ping.position.lng)
            .arg(ping.position.lat)
            .arg(ping.seq)
            .arg(payload)
            .arg(DRIVER_STATE_TTL.as_secs())
            .invoke_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(())
    }

    /// The driver's last live position, if it reported within the last hour.
    pub async fn position(&self, driver_id: Uuid) -> Result<Option<LivePosition>, StoreError> {
        self.field(driver_id, "position")
            .await?
            .map(|p| serde_json::from_str(&p).map_err(|err| StoreError::Corrupt(format!("live position: {err}"))))
            .transpose()
    }

    /// Remembers the driver's durable watermark, so a new session (on any
    /// replica, after a restart) can tell the app where to resume.
    pub async fn record_durable(&self, driver_id: Uuid, seq: u64) -> Result<(), StoreError> {
        self.set_field(driver_id, "durable", &seq.to_string()).await
    }

    pub async fn durable(&self, driver_id: Uuid) -> Result<Option<u64>, StoreError> {
        let value = self.field(driver_id, "durable").await?;
        value.map(|v| v.parse().map_err(|_| StoreError::Corrupt(format!("durable seq {v:?}")))).transpose()
    }

    /// `online`, `offline` or `busy`, as the app last said.
    pub async fn set_availability(&self, driver_id: Uuid, availability: &str) -> Result<(), StoreError> {
        self.set_field(driver_id, "availability", availability).await
    }

    pub async fn availability(&self, driver_id: Uuid) -> Result<Option<String>, StoreError> {
        self.field(driver_id, "availability").await
    }

    async fn set_field(&self, driver_id: Uuid, field: &str, value: &str) -> Result<(), StoreError> {
        let mut connection = self.redis.connection();
        let _: () = ::redis::pipe()
            .cmd("HSET")
            .arg(driver_key(driver_id))
            .arg(field)
            .arg(value)
            .ignore()
            .cmd("EXPIRE")
            .arg(driver_key(driver_id))
            .arg(DRIVER_STATE_TTL.as_secs())
            .ignore()
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(())
    }

    async fn field(&self, driver_id: Uuid, field: &str) -> Result<Option<String>, StoreError> {
        let mut connection = self.redis.connection();
        ::redis::cmd("HGET")
            .arg(driver_key(driver_id))
            .arg(field)
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)
    }

    /// Drivers in `city` within `radius_m` of `center`, nearest first.
    pub async fn nearby(
        &self,
        city: &str,
        center: LatLng,
        radius_m: u32,
        limit: usize,
    ) -> Result<Vec<(Uuid, f64)>, StoreError> {
        let mut connection = self.redis.connection();
        let found: Vec<(String, f64)> = ::redis::cmd("GEOSEARCH")
            .arg(city_key(city))
            .arg("FROMLONLAT")
            .arg(center.lng)
            .arg(center.lat)
            .arg("BYRADIUS")
            .arg(radius_m)
            .arg("m")
            .arg("ASC")
            .arg("COUNT")
            .arg(limit)
            .arg("WITHDIST")
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        found
            .into_iter()
            .map(|(id, distance)| {
                id.parse().map(|id| (id, distance)).map_err(|_| StoreError::Corrupt(format!("geo member {id:?}")))
            })
            .collect()
    }
}
