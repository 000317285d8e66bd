//! The gateway's configuration, layered like the server's: defaults, then
//! an optional TOML file (`FOODFAST_GATEWAY_CONFIG`), then `FOODFAST_*`
//! variables, then flags. Validated at load.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::value::Value;
use foodfast_config::Layers;
pub use foodfast_config::{ConfigError, Setting};
use foodfast_telemetry::TracesConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub http: HttpConfig,
    pub upstream: UpstreamConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub admin: AdminConfig,
    pub traces: TracesConfig,
}

/// Metrics and probes, apart from the public port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where `/metrics`, `/livez` and `/readyz` (the server answers its
    /// health check) are served.
    pub listen_addr: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen_addr: SocketAddr::from(([127, 0, 0, 1], 9465)) }
    }
}

/// What browsers and HTTP clients reach.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen_addr: SocketAddr,
    /// Largest request body; larger ones get 413 without reaching the server.
    pub max_body_bytes: usize,
    /// Largest message the server may answer (one message of a stream);
    /// larger ones end the call with 502.
    pub max_response_bytes: usize,
    /// A unary call's deadline, passed to the server as `grpc-timeout`;
    /// past it the client gets 504. A stream has this long to open (it may
    /// wait for an upstream slot), then no deadline.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Origins browsers may call from (CORS), e.g. `https://app.example`;
    /// `*` allows any. Empty: no cross-origin calls.
    #[serde(deserialize_with = "foodfast_config::comma_separated")]
    pub cors_allowed_origins: Vec<String>,
    /// PEM certificate chain to serve HTTPS with (with `tls_key`; neither:
    /// plain HTTP). Read at start.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The browser pages (`make web` builds them into `web/dist`), served
    /// at the root; empty: none.
    pub web_dir: PathBuf,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            cors_allowed_origins: Vec::new(),
            tls_cert: None,
            tls_key: None,
            web_dir: PathBuf::from("web/dist"),
        }
    }
}

/// The FoodFast gRPC server (one HTTP/2 connection, multiplexed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `https://` connects with TLS.
    pub url: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// PEM CA certificate(s) an `https://` server's certificate must chain
    /// to; none: the webpki roots (the Mozilla set).
    pub ca_cert: Option<PathBuf>,
    /// HTTP/2 connections to the server, taken in turn: each carries at most
    /// the server's `max_concurrent_streams` calls at once, and SSE streams
    /// hold theirs for as long as a browser watches.
    pub connections: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:50051".into(),
            connect_timeout: Duration::from_secs(5),
            ca_cert: None,
            connections: 8,
        }
    }
}

/// Token buckets at the edge; a refused request gets 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per second from one client IP.
    pub per_ip_per_second: NonZeroU32,
    /// Requests per second from one caller (by bearer token).
    pub per_caller_per_second: NonZeroU32,
    /// How many seconds' worth of requests may arrive at once.
    pub burst_seconds: NonZeroU32,
    /// Orders one caller may place per minute (`POST /api/v1/orders`).
    pub orders_per_minute: NonZeroU32,
    /// Orders placed at once before the per-minute pace applies.
    pub orders_burst: NonZeroU32,
    /// Requests one client IP (an IPv6 /64) may have open at once, streams
    /// included: one client cannot hold every upstream slot.
    pub max_in_flight_per_ip: NonZeroU32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let n = |value| NonZeroU32::new(value).expect("a positive default");
        Self {
            per_ip_per_second: n(50),
            per_caller_per_second: n(20),
            burst_seconds: n(2),
            orders_per_minute: n(10),
            orders_burst: n(5),
            max_in_flight_per_ip: n(64),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The server's token keys (`kid:secret`): tokens are checked at the
    /// edge too. Empty: the gateway passes tokens on unchecked.
    #[serde(deserialize_with = "foodfast_config::comma_separated")]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { filter: "info".into() }
    }
}

/// Every variable the gateway reads. README's configuration table lists the
/// same ones (a test checks).
pub const SETTINGS: &[Setting] = &[
    Setting { env: "FOODFAST_GATEWAY_ADDR", key: "http.listen_addr", help: "gateway listen address" },
    Setting { env: "FOODFAST_GATEWAY_UPSTREAM", key: "upstream.url", help: "the FoodFast gRPC server" },
    Setting {
        env: "FOODFAST_GATEWAY_UPSTREAM_CONNECTIONS",
        key: "upstream.connections",
        help: "HTTP/2 connections to the server, taken in turn",
    },
    Setting {
        env: "FOODFAST_GATEWAY_UPSTREAM_CA",
        key: "upstream.ca_cert",
        help: "PEM CA certificate an https:// upstream must chain to",
    },
    Setting {
        env: "FOODFAST_GATEWAY_TLS_CERT",
        key: "http.tls_cert",
        help: "PEM certificate chain to serve HTTPS with",
    },
    Setting { env: "FOODFAST_GATEWAY_TLS_KEY", key: "http.tls_key", help: "PEM private key of the HTTPS certificate" },
    Setting {
        env: "FOODFAST_GATEWAY_MAX_BODY_BYTES",
        key: "http.max_body_bytes",
        help: "largest request body (413 above)",
    },
    Setting {
        env: "FOODFAST_GATEWAY_MAX_RESPONSE_BYTES",
        key: "http.max_response_bytes",
        help: "largest message the server may answer",
    },
    Setting {
        env: "FOODFAST_GATEWAY_REQUEST_TIMEOUT",
        key: "http.request_timeout",
        help: "deadline of a unary call, and of a stream's opening (504 past it)",
    },
    Setting {
        env: "FOODFAST_GATEWAY_CORS_ORIGINS",
        key: "http.cors_allowed_origins",
        help: "origins browsers may call from, comma-separated, or `*`",
    },
    Setting {
        env: "FOODFAST_GATEWAY_WEB_DIR",
        key: "http.web_dir",
        help: "the browser pages to serve at the root (`make web` builds web/dist); empty: none",
    },
    Setting {
        env: "FOODFAST_GATEWAY_RATE_PER_IP",
        key: "limits.per_ip_per_second",
        help: "requests per second from one IP",
    },
    Setting {
        env: "FOODFAST_GATEWAY_MAX_IN_FLIGHT_PER_IP",
        key: "limits.max_in_flight_per_ip",
        help: "requests and streams one client IP may have open at once",
    },
    Setting {
        env: "FOODFAST_GATEWAY_RATE_PER_CALLER",
        key: "limits.per_caller_per_second",
        help: "requests per second from one caller",
    },
    Setting {
        env: "FOODFAST_GATEWAY_ORDERS_PER_MINUTE",
        key: "limits.orders_per_minute",
        help: "orders one caller may place per minute",
    },
    Setting { env: "FOODFAST_AUTH_KEYS", key: "auth.keys", help: "the server's token keys, checked at the edge too" },
    Setting {
        env: "FOODFAST_GATEWAY_ADMIN_ADDR",
        key: "admin.listen_addr",
        help: "admin listen address: /metrics, /livez, /readyz",
    },
    Setting {
        env: "FOODFAST_GATEWAY_OTLP_ENDPOINT",
        key: "traces.otlp_endpoint",
        help: "OTLP/gRPC collector for traces, e.g. http://otel-collector:4317",
    },
    Setting {
        env: "FOODFAST_GATEWAY_TRACE_SAMPLE_RATIO",
        key: "traces.sample_ratio",
        help: "share of new traces kept, 0 to 1",
    },
    Setting { env: "FOODFAST_LOG", key: "log.filter", help: "tracing filter, e.g. `info`" },
];

/// The variable naming the optional configuration file.
pub const CONFIG_FILE_ENV: &str = "FOODFAST_GATEWAY_CONFIG";

const LAYERS: Layers = Layers { settings: SETTINGS, file_env: CONFIG_FILE_ENV };

impl GatewayConfig {
    /// Loads defaults < `file` (or `FOODFAST_GATEWAY_CONFIG`) < the
    /// variables in `env` < `listen_addr` from the command line.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        listen_addr: Option<SocketAddr>,
    ) -> Result<Self, ConfigError> {
        let flags: Vec<(&str, Value)> =
            listen_addr.map(|addr| ("http.listen_addr", addr.to_string().into())).into_iter().collect();
        let config: GatewayConfig = LAYERS.load(file, env, &flags)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.traces.validate().map_err(|(field, message)| LAYERS.invalid(&format!("traces.{field}"), message))?;
        if self.admin.listen_addr == self.http.listen_addr {
            return Err(LAYERS.invalid("admin.listen_addr", "must differ from the HTTP listen address"));
        }
        if !self.upstream.url.starts_with("http://") && !self.upstream.url.starts_with("https://") {
            return Err(LAYERS.invalid("upstream.url", "must be an http:// or https:// URL"));
        }
        tonic::transport::Endpoint::from_shared(self.upstream.url.clone())
            .map_err(|err| LAYERS.invalid("upstream.url", err.to_string()))?;
        if self.upstream.ca_cert.is_some() && !self.upstream.url.starts_with("https://") {
            return Err(LAYERS.invalid("upstream.ca_cert", "only applies to an https:// upstream.url"));
        }
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(_), None) => return Err(LAYERS.invalid("http.tls_key", "required with FOODFAST_GATEWAY_TLS_CERT")),
            (None, Some(_)) => return Err(LAYERS.invalid("http.tls_cert", "required with FOODFAST_GATEWAY_TLS_KEY")),
            _ => {}
        }
        for (key, path) in [
            ("http.tls_cert", &self.http.tls_cert),
            ("http.tls_key", &self.http.tls_key),
            ("upstream.ca_cert", &self.upstream.ca_cert),
        ] {
            if path.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
                return Err(LAYERS.invalid(key, "must name a PEM file"));
            }
        }
        if self.http.max_body_bytes == 0 || self.http.max_response_bytes == 0 {
            return Err(LAYERS.invalid("http.max_body_bytes", "size limits must be positive"));
        }
        if !(1..=64).contains(&self.upstream.connections) {
            return Err(LAYERS.invalid("upstream.connections", "must be 1 to 64"));
        }
        if self.http.request_timeout.is_zero() || self.upstream.connect_timeout.is_zero() {
            return Err(LAYERS.invalid("http.request_timeout", "timeouts must be positive"));
        }
        for origin in self.http.cors_allowed_origins.iter().filter(|origin| *origin != "*") {
            let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            if !host.is_some_and(|host| !host.is_empty() && !host.contains('/'))
                || http::HeaderValue::from_str(origin).is_err()
            {
                let message = format!("{origin:?} is not an origin (scheme://host[:port], or *)");
                return Err(LAYERS.invalid("http.cors_allowed_origins", message));
            }
        }
        self.token_keys()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|err| LAYERS.invalid("log.filter", format!("not a tracing filter: {err}")))?;
        Ok(())
    }

    /// The token keys to check bearer tokens with (none: unchecked).
    pub fn token_keys(&self) -> Result<Vec<foodfast_auth::TokenKey>, ConfigError> {
        self.auth
            .keys
            .iter()
            .map(|key| foodfast_auth::TokenKey::parse(key).map_err(|message| LAYERS.invalid("auth.keys", message)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_defaults_parse_and_validate() {
        let config = GatewayConfig::load(None, &env(&[]), None).unwrap();
        assert_eq!(config.http.listen_addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.upstream.url, "http://127.0.0.1:50051");
        assert!(config.auth.keys.is_empty());
    }

    #[test]
    fn every_setting_names_a_real_key() {
        assert_eq!(LAYERS.settings_without_key::<GatewayConfig>(), Vec::<&str>::new());
    }

    #[test]
    fn layers_apply_file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        std::fs::write(
            &file,
            "[http]\nlisten_addr = \"127.0.0.1:7001\"\nrequest_timeout = \"3s\"\n[limits]\nper_ip_per_second = 5\n",
        )
        .unwrap();
        let vars = env(&[
            (CONFIG_FILE_ENV, file.to_str().unwrap()),
            ("FOODFAST_GATEWAY_RATE_PER_IP", "7"),
            ("FOODFAST_GATEWAY_CORS_ORIGINS", "https://a.example, https://b.example"),
            ("FOODFAST_GATEWAY_ADDR", "127.0.0.1:7002"),
        ]);
        let config = GatewayConfig::load(None, &vars, Some("127.0.0.1:7003".parse().unwrap())).unwrap();
        assert_eq!(config.http.request_timeout, Duration::from_secs(3));
        assert_eq!(config.limits.per_ip_per_second.get(), 7);
        assert_eq!(config.http.cors_allowed_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(config.http.listen_addr, "127.0.0.1:7003".parse().unwrap());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("FOODFAST_GATEWAY_UPSTREAM", "127.0.0.1:50051"),
            ("FOODFAST_GATEWAY_RATE_PER_IP", "0"),
            ("FOODFAST_GATEWAY_UPSTREAM_CONNECTIONS", "0"),
            ("FOODFAST_GATEWAY_REQUEST_TIMEOUT", "soon"),
            ("FOODFAST_AUTH_KEYS", "k1:short"),
            ("FOODFAST_GATEWAY_CORS_ORIGINS", "a.example"),
            ("FOODFAST_GATEWAY_CORS_ORIGINS", "https://a.example/app"),
            ("FOODFAST_GATEWAY_ADMIN_ADDR", "127.0.0.1:8080"),
            ("FOODFAST_GATEWAY_OTLP_ENDPOINT", "collector"),
            ("FOODFAST_GATEWAY_TRACE_SAMPLE_RATIO", "-0.1"),
        ] {
            let err = GatewayConfig::load(None, &env(&[(var, value)]), None).expect_err(var).to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn tls_files_are_configured_both_or_neither() {
        let vars = env(&[
            ("FOODFAST_GATEWAY_TLS_CERT", "/etc/foodfast/gateway.pem"),
            ("FOODFAST_GATEWAY_TLS_KEY", "/etc/foodfast/gateway.key"),
            ("FOODFAST_GATEWAY_UPSTREAM", "https://foodfast.internal:50051"),
            ("FOODFAST_GATEWAY_UPSTREAM_CA", "/etc/foodfast/ca.pem"),
        ]);
        let config = GatewayConfig::load(None, &vars, None).unwrap();
        assert_eq!(config.http.tls_cert.as_deref(), Some(Path::new("/etc/foodfast/gateway.pem")));
        assert_eq!(config.http.tls_key.as_deref(), Some(Path::new("/etc/foodfast/gateway.key")));
        assert_eq!(config.upstream.ca_cert.as_deref(), Some(Path::new("/etc/foodfast/ca.pem")));
        let defaults = GatewayConfig::load(None, &env(&[]), None).unwrap();
        assert!(defaults.http.tls_cert.is_none() && defaults.http.tls_key.is_none());
        assert!(defaults.upstream.ca_cert.is_none());

        // The one without the other, and a CA for a plaintext upstream.
        for (given, named) in [
            (("FOODFAST_GATEWAY_TLS_CERT", "/etc/foodfast/gateway.pem"), "FOODFAST_GATEWAY_TLS_KEY"),
            (("FOODFAST_GATEWAY_TLS_KEY", "/etc/foodfast/gateway.key"), "FOODFAST_GATEWAY_TLS_CERT"),
            (("FOODFAST_GATEWAY_UPSTREAM_CA", "/etc/foodfast/ca.pem"), "FOODFAST_GATEWAY_UPSTREAM_CA"),
        ] {
            let err = GatewayConfig::load(None, &env(&[given]), None).expect_err(named).to_string();
            assert!(err.contains(named), "{given:?}: {err}");
        }
    }

    #[test]
    fn readme_documents_every_variable() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        for setting in SETTINGS {
            assert!(readme.contains(setting.env), "README.md does not document {}", setting.env);
        }
        assert!(readme.contains(CONFIG_FILE_ENV));
    }
}
