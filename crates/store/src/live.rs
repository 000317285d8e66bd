//! Drivers' live state in Redis: the latest position in its city's geo set,
//! a small hash per driver, and a pub/sub message per accepted ping for
//! tracking subscribers on any replica. A second geo set per city holds only
//! the drivers dispatch may offer to: online (the driver's wish), below
//! capacity (the server's view) and with a Connect stream open; every script
//! that changes one of those re-files the driver in one step.

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

fn driver_key(driver_id: impl std::fmt::Display) -> String {
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

fn available_key(city: &str) -> String {
    format!("ff:avail:{city}")
}

/// Files the driver in its city's available set, or takes it out.
const REINDEX: &str = r"
    local function reindex(hash, id)
        local f = redis.call('HMGET', hash, 'city', 'availability', 'full', 'session', 'lng', 'lat')
        if not f[1] then return end
        local key = 'ff:avail:' .. f[1]
        if f[2] == 'online' and f[3] ~= '1' and f[4] and f[4] ~= '' and f[5] then
            redis.call('GEOADD', key, f[5], f[6], id)
        else
            redis.call('ZREM', key, id)
        end
    end
";

fn script(body: &str) -> ::redis::Script {
    ::redis::Script::new(&format!("{REINDEX}\n{body}"))
}

/// Moves the driver to its new city's sets if the city changed, then updates
/// position, hash and expiry, and publishes: one round trip, atomic.
static UPDATE: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
        local previous = redis.call('HGET', KEYS[1], 'city')
        if previous and previous ~= ARGV[1] then
            redis.call('ZREM', 'ff:geo:' .. previous, ARGV[2])
            redis.call('ZREM', 'ff:avail:' .. previous, ARGV[2])
        end
        redis.call('GEOADD', KEYS[2], ARGV[3], ARGV[4], ARGV[2])
        redis.call('HSET', KEYS[1], 'city', ARGV[1], 'seq', ARGV[5], 'position', ARGV[6], 'lng', ARGV[3],
            'lat', ARGV[4])
        redis.call('EXPIRE', KEYS[1], ARGV[7])
        reindex(KEYS[1], ARGV[2])
        redis.call('PUBLISH', KEYS[3], ARGV[6])
        return 1
        ",
    )
});

/// Sets hash fields (ARGV[3..] as name, value pairs), then re-files the driver.
static SET_FIELDS: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
        for i = 3, #ARGV, 2 do
            redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
        end
        redis.call('EXPIRE', KEYS[1], ARGV[2])
        reindex(KEYS[1], ARGV[1])
        return 1
        ",
    )
});

/// Raises the driver's durable watermark to ARGV[1], never lowers it. Seqs
/// are compared as decimal strings: Lua's numbers are exact only to 2^53.
static RAISE_DURABLE: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    ::redis::Script::new(
        r"
        local current = redis.call('HGET', KEYS[1], 'durable') or '0'
        local new = ARGV[1]
        if #new > #current or (#new == #current and new > current) then
            redis.call('HSET', KEYS[1], 'durable', new)
        end
        redis.call('EXPIRE', KEYS[1], ARGV[2])
        return 1
        ",
    )
});

/// Ends the driver's session ARGV[2] unless a newer one replaced it.
static END_SESSION: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    script(
        r"
        if redis.call('HGET', KEYS[1], 'session') ~= ARGV[2] then return 0 end
        redis.call('HSET', KEYS[1], 'session', '')
        reindex(KEYS[1], ARGV[1])
        return 1
        ",
    )
});

/// Takes the members ARGV[1], ARGV[3], … out of the available set KEYS[1],
/// each unless its position is no longer the one it was judged stale by
/// (ARGV[2], ARGV[4], …; '' for none): a ping that filed the driver again
/// meanwhile is not undone.
static DROP_STALE: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    ::redis::Script::new(
        r"
        local dropped = 0
        for i = 1, #ARGV, 2 do
            local now = redis.call('HGET', 'ff:driver:' .. ARGV[i], 'position') or ''
            if now == ARGV[i + 1] then
                dropped = dropped + redis.call('ZREM', KEYS[1], ARGV[i])
            end
        end
        return dropped
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
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.update", skip_all, fields(otel.kind = "client", db.system = "redis"))]
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
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.position", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn position(&self, driver_id: Uuid) -> Result<Option<LivePosition>, StoreError> {
        self.field(driver_id, "position")
            .await?
            .map(|p| serde_json::from_str(&p).map_err(|err| StoreError::Corrupt(format!("live position: {err}"))))
            .transpose()
    }

    /// The last live positions of those of `drivers` that have one, in one
    /// round trip.
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.positions", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub(crate) async fn positions(&self, drivers: &[Uuid]) -> Result<Vec<LivePosition>, StoreError> {
        let mut connection = self.redis.connection();
        Ok(positions_of(&mut connection, drivers).await?.into_iter().flatten().collect())
    }

    /// Remembers the driver's durable watermark, so a new session (on any
    /// replica, after a restart) can tell the app where to resume. Never
    /// lowers it: a replaced stream ending late must not undo what its
    /// successor recorded.
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.record_durable", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn record_durable(&self, driver_id: Uuid, seq: u64) -> Result<(), StoreError> {
        let mut connection = self.redis.connection();
        let _: i32 = RAISE_DURABLE
            .key(driver_key(driver_id))
            .arg(seq.to_string())
            .arg(DRIVER_STATE_TTL.as_secs())
            .invoke_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(())
    }

    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.durable", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn durable(&self, driver_id: Uuid) -> Result<Option<u64>, StoreError> {
        let value = self.field(driver_id, "durable").await?;
        value.map(|v| v.parse().map_err(|_| StoreError::Corrupt(format!("durable seq {v:?}")))).transpose()
    }

    /// `online`, `offline` or `busy`, as the driver wishes.
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.set_availability", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn set_availability(&self, driver_id: Uuid, availability: &str) -> Result<(), StoreError> {
        self.set_fields(driver_id, &[("availability", availability)]).await
    }

    /// Whether the driver holds as many deliveries as allowed (the server's
    /// view, after each assignment, delivery or cancellation).
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.set_at_capacity", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn set_at_capacity(&self, driver_id: Uuid, at_capacity: bool) -> Result<(), StoreError> {
        self.set_fields(driver_id, &[("full", if at_capacity { "1" } else { "0" })]).await
    }

    /// The driver's availability as dispatch sees it: `busy` while at
    /// capacity even if the driver wishes to be `online`.
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.availability", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn availability(&self, driver_id: Uuid) -> Result<Option<String>, StoreError> {
        let mut connection = self.redis.connection();
        let (wish, full): (Option<String>, Option<String>) = ::redis::cmd("HMGET")
            .arg(driver_key(driver_id))
            .arg("availability")
            .arg("full")
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(match (wish, full.as_deref()) {
            (Some(wish), Some("1")) if wish == "online" => Some("busy".into()),
            (wish, _) => wish,
        })
    }

    /// A Connect stream `session` of the driver opened: it may get offers,
    /// and the driver's older stream is [`replaced`](Self::replaced).
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.start_session", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn start_session(&self, driver_id: Uuid, session: Uuid) -> Result<(), StoreError> {
        self.set_fields(driver_id, &[("session", &session.to_string())]).await
    }

    /// Whether the driver has a Connect stream open (on any replica).
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.connected", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn connected(&self, driver_id: Uuid) -> Result<bool, StoreError> {
        Ok(self.field(driver_id, "session").await?.is_some_and(|session| !session.is_empty()))
    }

    /// Whether a later Connect stream of the driver (on any replica) took
    /// over from `session`, open or ended since: the driver's hash names the
    /// current one.
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.replaced", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn replaced(&self, driver_id: Uuid, session: Uuid) -> Result<bool, StoreError> {
        Ok(self.field(driver_id, "session").await?.is_some_and(|current| current != session.to_string()))
    }

    /// The stream `session` ended; a newer stream of the driver (on any
    /// replica) is left alone. Returns whether `session` was the current one.
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.end_session", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn end_session(&self, driver_id: Uuid, session: Uuid) -> Result<bool, StoreError> {
        let mut connection = self.redis.connection();
        let ended: i32 = END_SESSION
            .key(driver_key(driver_id))
            .arg(driver_id.to_string())
            .arg(session.to_string())
            .invoke_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(ended == 1)
    }

    async fn set_fields(&self, driver_id: Uuid, fields: &[(&str, &str)]) -> Result<(), StoreError> {
        let mut connection = self.redis.connection();
        let mut invocation = SET_FIELDS.key(driver_key(driver_id));
        invocation.arg(driver_id.to_string()).arg(DRIVER_STATE_TTL.as_secs());
        for (name, value) in fields {
            invocation.arg(*name).arg(*value);
        }
        let _: i32 = invocation.invoke_async(&mut connection).await.map_err(StoreError::redis)?;
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
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.nearby", skip_all, fields(otel.kind = "client", db.system = "redis"))]
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

    /// Drivers dispatch may offer to in `city` within `radius_m` of
    /// `center`, nearest first, with their last positions. A member whose
    /// last position came before `fresh_since` (its app went silent, or the
    /// replica holding its stream died without ending the session) or whose
    /// hash expired is dropped from the set here; its next ping files it
    /// again.
    #[tracing::instrument(target = "foodfast::trace", name = "LivePositions.available_near", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn available_near(
        &self,
        city: &str,
        center: LatLng,
        radius_m: u32,
        limit: usize,
        fresh_since: DateTime<Utc>,
    ) -> Result<Vec<LivePosition>, StoreError> {
        let mut connection = self.redis.connection();
        let key = available_key(city);
        let found: Vec<String> = ::redis::cmd("GEOSEARCH")
            .arg(&key)
            .arg("FROMLONLAT")
            .arg(center.lng)
            .arg(center.lat)
            .arg("BYRADIUS")
            .arg(radius_m)
            .arg("m")
            .arg("ASC")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let ids = found
            .iter()
            .map(|id| id.parse().map_err(|_| StoreError::Corrupt(format!("available set member {id:?}"))))
            .collect::<Result<Vec<Uuid>, _>>()?;
        let stored = stored_positions_of(&mut connection, &ids).await?;
        let mut available = Vec::with_capacity(found.len());
        let mut gone = DROP_STALE.key(&key);
        let mut any_gone = false;
        for ((id, member), stored) in ids.iter().zip(&found).zip(&stored) {
            match parse_position(*id, stored.as_deref())? {
                Some(position) if position.received_at >= fresh_since => available.push(position),
                _ => {
                    gone.arg(member).arg(stored.as_deref().unwrap_or_default());
                    any_gone = true;
                }
            }
        }
        if any_gone {
            let _: i64 = gone.invoke_async(&mut connection).await.map_err(StoreError::redis)?;
        }
        Ok(available)
    }
}

/// Each driver's last live position (`None`: its hash expired), in one round trip.
async fn positions_of(
    connection: &mut ::redis::aio::ConnectionManager,
    drivers: &[Uuid],
) -> Result<Vec<Option<LivePosition>>, StoreError> {
    let found = stored_positions_of(connection, drivers).await?;
    drivers.iter().zip(found).map(|(id, position)| parse_position(*id, position.as_deref())).collect()
}

/// Each driver's last live position as stored (`None`: its hash expired).
async fn stored_positions_of(
    connection: &mut ::redis::aio::ConnectionManager,
    drivers: &[Uuid],
) -> Result<Vec<Option<String>>, StoreError> {
    if drivers.is_empty() {
        return Ok(Vec::new());
    }
    let mut lookup = ::redis::pipe();
    for id in drivers {
        lookup.cmd("HGET").arg(driver_key(id)).arg("position");
    }
    lookup.query_async(connection).await.map_err(StoreError::redis)
}

fn parse_position(driver_id: Uuid, stored: Option<&str>) -> Result<Option<LivePosition>, StoreError> {
    stored
        .map(serde_json::from_str)
        .transpose()
        .map_err(|err| StoreError::Corrupt(format!("live position of {driver_id}: {err}")))
}
