//! HTTPS for the catalogue: rustls with the certificate and key named in the configuration.
//!
//! Owns loading the PEM files, the listeners axum serves from (TLS, and plain HTTP for
//! loopback or behind a proxy; both set TCP_NODELAY) and the client certificate a connection
//! presented ([`ClientCert`], checked by ingest for agents). A handshake that fails or stalls
//! (10 s) is dropped without disturbing the others' connections.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
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

pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, cfg: Arc<rustls::ServerConfig>) -> Self {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(cfg),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = match self.tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // see the plain listener: no Nagle delay on the audio's pieces
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::debug!(%addr, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The certificate a client presented in the TLS handshake (verified against
/// `server.client_ca`), for the handlers that need it: agents' ingest.
#[derive(Clone, Debug, Default)]
pub struct ClientCert(pub Option<Arc<CertificateDer<'static>>>);

trait PeerCertificate {
    fn peer_certificate(&self) -> ClientCert;
}

impl PeerCertificate for TlsStream<TcpStream> {
    fn peer_certificate(&self) -> ClientCert {
        ClientCert(
            self.get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::new(c.clone().into_owned())),
        )
    }
}

/// The plain-HTTP listener (loopback, behind a TLS proxy).
pub struct PlainListener(pub TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    // see TlsListener: no Nagle delay on the audio's pieces
                    let _ = tcp.set_nodelay(true);
                    return (tcp, addr);
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ClientCert
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.io().peer_certificate()
    }
}

/// Plain HTTP (loopback, behind a proxy): never a client certificate.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, PlainListener>>
    for ClientCert
{
    fn connect_info(_: axum::serve::IncomingStream<'_, PlainListener>) -> Self {
        ClientCert(None)
    }
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
