//! rustls client configurations for the stores' TLS: how much of the
//! server's certificate is checked, and the client's own certificate.
//! CockroachDB/PostgreSQL ([`crate::postgres_tls`]) and ScyllaDB
//! ([`crate::scylla`]) name their settings differently; `names` carries
//! theirs into the messages.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Makes ring the process's rustls provider. The ScyllaDB driver builds
/// rustls with aws-lc-rs as well, and with two providers compiled in, a
/// library that asks for "the default" (tonic's TLS server, the redis
/// crate) panics unless one was chosen. Idempotent.
pub fn use_ring_by_default() {
    let _ = ring::default_provider().install_default();
}

/// What of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing (encryption only), or the chain when a root certificate is given.
    ChainIfRootGiven,
    /// The chain, to the given root or else to the Mozilla roots.
    Chain,
    /// The chain and the server's name.
    ChainAndName,
}

/// The setting names a store's messages use for the root certificate, the
/// client certificate and its key.
#[derive(Debug, Clone, Copy)]
pub struct SettingNames {
    pub root_cert: &'static str,
    pub client_cert: &'static str,
    pub client_key: &'static str,
}

/// The configuration, with the certificate files read (a missing or
/// malformed one is named in the message).
pub fn client_config(
    check: Check,
    root_cert: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
    names: SettingNames,
) -> Result<ClientConfig, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?;
    let roots = match root_cert {
        Some(path) => Some(root_store(path, names.root_cert)?),
        None if check != Check::ChainIfRootGiven => {
            Some(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
        }
        None => None,
    };
    let builder = match (check, roots) {
        (Check::ChainAndName, Some(roots)) => builder.with_root_certificates(roots),
        (_, roots) => {
            let chain = roots
                .map(|roots| WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build())
                .transpose()
                .map_err(|err| format!("{}: {err}", names.root_cert))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly { chain, provider }))
        }
    };
    match client_cert {
        Some((cert, key)) => {
            let chain = certificates(cert, names.client_cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|err| format!("{} {}: {err}", names.client_key, key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| format!("{}/{}: {err}", names.client_cert, names.client_key))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

fn certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("{setting} {}: {err}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{setting} {}: no PEM certificate in it", path.display()));
    }
    Ok(certificates)
}

fn root_store(path: &Path, setting: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(path, setting)? {
        roots.add(certificate).map_err(|err| format!("{setting} {}: {err}", path.display()))?;
    }
    Ok(roots)
}

/// Checks the server's chain but not its name, or nothing at all (no root
/// given where none is required, as libpq does). Handshake signatures are
/// always checked.
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
