//! The catalogue's HTTP server: its connections (plain or TLS), and the limits that keep a
//! stranger on the network from exhausting it.
//!
//! Owns the accept loop and each connection's life:
//!
//! - at most `server.max_connections` at once, and `server.max_connections_per_address` from
//!   one address (the next waits, or is closed at once), well below the open-file limit;
//! - a request's headers within [`Limits::header_read`] (a trickle of header bytes is cut off);
//! - a request's body at no less than [`MIN_BODY_RATE`] after a grace period as long as the
//!   header timeout (a trickled body is cut off; an agent's upload on any working link is not);
//! - no connection idle, nothing read or written, for longer than [`Limits::idle`] (an idle
//!   keep-alive connection, a client that stopped reading a download).
//!
//! `SIGTERM` stops accepting, lets the requests in flight finish (at most 20 s) and returns.
//! It decides nothing about who may do what: that is the router's.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::tls::ClientCert;

/// A request body must arrive at 16 KiB/s at least, after a grace period as long as the
/// header timeout.
pub const MIN_BODY_RATE: u64 = 16 << 10;
/// A TLS handshake's time.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long a stop waits for the requests in flight.
const DRAIN: Duration = Duration::from_secs(20);

/// The server's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub header_read: Duration,
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_per_address: 128,
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        }
    }
}

/// Connections open per source address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One open connection's place in [`PerAddress`], given back when it closes.
struct AddressSlot(Arc<PerAddress>, IpAddr);

impl PerAddress {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.0.lock().ok()?;
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot(self.clone(), ip))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.0.0.lock()
            && let Some(n) = open.get_mut(&self.1)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (stopping, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        // a connection slot first: at the limit, new connections wait in the backlog
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // out of file descriptors, most often: wait for some to close
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        while connections.try_join_next().is_some() {}
        let Some(slot) = per_address.take(addr.ip(), limits.max_per_address) else {
            tracing::warn!(%addr, "too many connections from one address: closed");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (router, acceptor, stop_rx) = (router.clone(), acceptor.clone(), stop_rx.clone());
        connections.spawn(async move {
            let _held = (permit, slot);
            match acceptor {
                None => {
                    let io = Watched::new(tcp, limits.idle);
                    connection(io, addr, ClientCert::default(), router, limits, stop_rx).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let cert = super::tls::peer_certificate(&tls);
                            let io = Watched::new(tls, limits.idle);
                            connection(io, addr, cert, router, limits, stop_rx).await
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("stopping with requests still in flight after {DRAIN:?}");
    }
}

/// One connection, HTTP/1.1 with keep-alive, until it ends or the server stops.
async fn connection<I>(
    io: I,
    addr: SocketAddr,
    cert: ClientCert,
    router: axum::Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(cert.clone()));
            req.extensions_mut().insert(ConnectInfo(addr));
            router.clone().oneshot(req.map(Body::new))
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%addr, "connection: {e}");
    }
}

/// The layer that holds each request's body to [`MIN_BODY_RATE`]: its whole length (as
/// declared, else the largest upload) must have arrived by the grace period plus length / rate.
pub async fn body_rate(
    axum::extract::State(app): axum::extract::State<super::App>,
    req: Request,
    next: Next,
) -> Response {
    let grace = Duration::from_secs(app.config.server.header_timeout_seconds);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = req.into_parts();
    if declared == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let length = declared.unwrap_or((app.config.server.max_upload_mb as u64) << 20);
    let allowed = grace + Duration::from_secs(length / MIN_BODY_RATE);
    let body = Body::new(Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(allowed)),
    });
    next.run(Request::from_parts(parts, body)).await
}

/// The headers every answer carries: no content sniffing, no framing, referrers only to the
/// catalogue itself, HSTS over TLS, and nothing stored by a browser or proxy but the static
/// files (pages and JSON hold callers' numbers).
pub async fn security_headers(
    axum::extract::State(app): axum::extract::State<super::App>,
    req: Request,
    next: Next,
) -> Response {
    use axum::http::HeaderValue;
    let cacheable = req.uri().path().starts_with("/static/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if app.config.server.tls_cert.is_some() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !cacheable && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A request body that fails when it has not all arrived by its deadline.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        ready!(self.sleep.as_mut().poll(cx));
        let late = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request body arrived too slowly",
        );
        Poll::Ready(Some(Err(axum::Error::new(late))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection that fails once nothing was read or written for `idle`.
struct Watched<I> {
    io: I,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<I> Watched<I> {
    fn new(io: I, idle: Duration) -> Self {
        Watched {
            io,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn progressed(&mut self) {
        let idle = self.idle;
        self.deadline.as_mut().reset(Instant::now() + idle);
    }

    /// Pending I/O: an error once the connection has been idle too long.
    fn idle_out<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connection idle",
        )))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.idle_out(cx),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.idle_out(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.idle_out(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The plain listener for tests and the demo: the same server, default limits.
pub async fn serve_plain(listener: TcpListener, router: axum::Router) {
    serve(
        listener,
        None,
        router,
        Limits::default(),
        std::future::pending(),
    )
    .await
}

/// The open-file limit this process may use (the soft limit raised to the hard one), and the
/// connection limit that leaves room in it for the database, blobs and logs.
pub fn fit_to_open_files(limits: &mut Limits) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let usable = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let room = usize::try_from(usable)
        .unwrap_or(usize::MAX)
        .saturating_sub(128);
    if limits.max_connections > room {
        tracing::warn!(
            open_files = usable,
            "server.max_connections = {} does not fit the open-file limit: using {room} (raise LimitNOFILE)",
            limits.max_connections
        );
        limits.max_connections = room.max(16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_that_stops_arriving_fails_at_its_deadline() {
        let stalled = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
        let body = Body::new(Deadline {
            inner: Body::from_stream(stalled),
            sleep: Box::pin(tokio::time::sleep(Duration::from_millis(200))),
        });
        let read =
            tokio::time::timeout(Duration::from_secs(60), axum::body::to_bytes(body, 1 << 20))
                .await;
        assert!(matches!(read, Ok(Err(_))), "{read:?}");
    }
}
