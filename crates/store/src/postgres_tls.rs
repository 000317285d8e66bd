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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

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
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS: {err}"))?;
        let roots = match &self.root_cert {
            Some(path) => Some(root_store(path)?),
            None if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                Some(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
            }
            None => None,
        };
        let builder = match (self.mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
            (_, roots) => {
                let chain = roots
                    .map(|roots| WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build())
                    .transpose()
                    .map_err(|err| format!("sslrootcert: {err}"))?;
                builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly { chain, provider }))
            }
        };
        let config = match &self.client_cert {
            Some((cert, key)) => {
                let chain = certificates(cert, "sslcert")?;
                let key =
                    PrivateKeyDer::from_pem_file(key).map_err(|err| format!("sslkey {}: {err}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|err| format!("sslcert/sslkey: {err}"))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

fn certificates(path: &Path, parameter: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("{parameter} {}: {err}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{parameter} {}: no PEM certificate in it", path.display()));
    }
    Ok(certificates)
}

fn root_store(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(path, "sslrootcert")? {
        roots.add(certificate).map_err(|err| format!("sslrootcert {}: {err}", path.display()))?;
    }
    Ok(roots)
}

/// Checks the server's chain but not its name (`verify-ca`, or `require`
/// with a root certificate), or nothing at all (`prefer`/`require` without
/// one, as libpq does). Handshake signatures are always checked.
#[derive(Debug)]
struct ChainOnly {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(tokio_rustls::rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
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
