//! TLS to CockroachDB/PostgreSQL, set the way libpq sets it: `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` in the URL. tokio-postgres knows
//! only `disable`, `prefer` and `require` and no certificate files, so these
//! are taken out of the URL here and become a rustls configuration. (The
//! `key=value` form is passed to tokio-postgres as it is: its three modes.)
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (the default) | if the server offers it | chain, if `sslrootcert` is given |
//! | `require` | yes | chain, if `sslrootcert` is given |
//! | `verify-ca` | yes | chain (`sslrootcert`, else the Mozilla roots) |
//! | `verify-full` | yes | chain and host name |

use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls::{self, Check, SettingNames};

/// A database URL split into what tokio-postgres reads and how to secure it.
#[derive(Debug)]
pub struct PostgresUrl {
    pub config: tokio_postgres::Config,
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
    /// The client's certificate chain and key, for certificate authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl PostgresUrl {
    /// Parses a `postgresql://` URL with libpq's TLS parameters. The message
    /// says what is wrong, for a configuration error.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let (mut mode, mut root_cert, mut cert, mut key) = (None, None, None, None);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = || percent_decode_str(value).decode_utf8_lossy().into_owned();
            match name {
                "sslmode" => {
                    mode = Some(match decoded().as_str() {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode={other} is not supported: use disable, prefer, require, verify-ca or verify-full"
                            ));
                        }
                    })
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(decoded())),
                "sslcert" => cert = Some(PathBuf::from(decoded())),
                "sslkey" => key = Some(PathBuf::from(decoded())),
                _ => kept.push(pair),
            }
        }
        let client_cert = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("sslcert and sslkey go together: give both or neither".into()),
        };
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        let mut config: tokio_postgres::Config = rest.parse().map_err(|err| format!("not a PostgreSQL URL: {err}"))?;
        let mode = match mode {
            Some(mode) => {
                config.ssl_mode(match mode {
                    SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                    SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                    SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                        tokio_postgres::config::SslMode::Require
                    }
                });
                mode
            }
            // Not in a URL's query: the key=value form's own, which tokio-postgres read.
            None => match config.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => SslMode::Disable,
                tokio_postgres::config::SslMode::Require => SslMode::Require,
                _ => SslMode::Prefer,
            },
        };
        Ok(Self { config, tls: TlsSettings { mode, root_cert, client_cert } })
    }
}

impl TlsSettings {
    /// The TLS connector, reading the certificate files; `None` for `disable`.
    pub fn connector(&self) -> Result<Option<MakeRustlsConnect>, String> {
        let check = match self.mode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => Check::ChainIfRootGiven,
            SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndName,
        };
        let names = SettingNames { root_cert: "sslrootcert", client_cert: "sslcert", client_key: "sslkey" };
        let client_cert = self.client_cert.as_ref().map(|(cert, key)| (cert.as_path(), key.as_path()));
        let config = tls::client_config(check, self.root_cert.as_deref(), client_cert, names)?;
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_taken_out_and_the_rest_is_kept() {
        let url = "postgresql://root@db.internal:26257/foodfast?application_name=ff&sslmode=verify-full\
                   &sslrootcert=certs%2Fca.crt&sslcert=certs/client.root.crt&sslkey=certs/client.root.key";
        let parsed = PostgresUrl::parse(url).unwrap();
        assert_eq!(
            parsed.tls,
            TlsSettings {
                mode: SslMode::VerifyFull,
                root_cert: Some("certs/ca.crt".into()),
                client_cert: Some(("certs/client.root.crt".into(), "certs/client.root.key".into())),
            }
        );
        assert_eq!(parsed.config.get_application_name(), Some("ff"));
        assert_eq!(parsed.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(parsed.config.get_dbname(), Some("foodfast"));
    }

    #[test]
    fn without_sslmode_tls_is_preferred_and_only_libpq_modes_are_accepted() {
        let parsed = PostgresUrl::parse("postgresql://u@h/db").unwrap();
        assert_eq!(parsed.tls, TlsSettings { mode: SslMode::Prefer, root_cert: None, client_cert: None });
        assert_eq!(parsed.config.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
        let disabled = PostgresUrl::parse("postgresql://u@h/db?sslmode=disable").unwrap();
        assert_eq!(disabled.config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        assert!(disabled.tls.connector().unwrap().is_none());

        let key_value = PostgresUrl::parse("host=h dbname=db sslmode=require").unwrap();
        assert_eq!(key_value.tls.mode, SslMode::Require, "the key=value form keeps its own sslmode");
        assert_eq!(key_value.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);

        let err = PostgresUrl::parse("postgresql://u@h/db?sslmode=allow").unwrap_err();
        assert!(err.contains("sslmode=allow is not supported"), "{err}");
        let err = PostgresUrl::parse("postgresql://u@h/db?sslcert=c.pem").unwrap_err();
        assert!(err.contains("sslcert and sslkey go together"), "{err}");
        let err = PostgresUrl::parse("postgresql://u@h/db?sslmode=require&bogus=1").unwrap_err();
        assert!(err.starts_with("not a PostgreSQL URL"), "{err}");
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let parsed = PostgresUrl::parse("postgresql://u@h/db?sslmode=verify-full&sslrootcert=/nowhere/ca.pem").unwrap();
        let err = parsed.tls.connector().err().expect("no such file");
        assert!(err.starts_with("sslrootcert /nowhere/ca.pem:"), "{err}");
    }
}
