//! HTTPS for the catalogue: rustls with the certificate and key named in the configuration.
//!
//! Owns loading the PEM files into a rustls server configuration and the client certificate a
//! connection presented ([`ClientCert`], checked by ingest for agents). Connections themselves
//! are `serve`'s.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A server configuration from a PEM certificate chain and a PEM private key; with
/// `client_ca`, clients may present a certificate from that CA (verified in the handshake;
/// whether one is required is the endpoint's business: agents yes, browsers no).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("server.tls_cert = {cert:?}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("server.tls_cert = {cert:?}: {e}"))?;
    if chain.is_empty() {
        anyhow::bail!("server.tls_cert = {cert:?}: no certificate in the file");
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("server.tls_key = {key:?}: {e}"))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| anyhow::anyhow!("server.client_ca = {ca:?}: {e}"))?
            {
                let c = c.map_err(|e| anyhow::anyhow!("server.client_ca = {ca:?}: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| anyhow::anyhow!("server.client_ca = {ca:?}: {e}"))?;
            }
            if roots.is_empty() {
                anyhow::bail!("server.client_ca = {ca:?}: no certificate in the file");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .map_err(|e| anyhow::anyhow!("server.client_ca = {ca:?}: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("server.tls_cert / server.tls_key do not match: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The certificate a client presented in the TLS handshake (verified against
/// `server.client_ca`), for the handlers that need it: agents' ingest.
#[derive(Clone, Debug, Default)]
pub struct ClientCert(pub Option<Arc<CertificateDer<'static>>>);

/// The client certificate a TLS connection presented, if any.
pub fn peer_certificate(tls: &TlsStream<TcpStream>) -> ClientCert {
    ClientCert(
        tls.get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| Arc::new(c.clone().into_owned())),
    )
}

impl ClientCert {
    /// Whether this is a certificate for `name` (a DNS name in its subjectAltName).
    pub fn names(&self, name: &str) -> bool {
        let Some(der) = &self.0 else {
            return false;
        };
        let Ok(name) = rustls::pki_types::ServerName::try_from(name) else {
            return false;
        };
        webpki::EndEntityCert::try_from(der.as_ref())
            .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
    }
}
