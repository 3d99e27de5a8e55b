//! systemd's notify protocol (`Type=notify`): readiness, watchdog, stopping, status.
//!
//! A datagram to the socket named by `$NOTIFY_SOCKET`; nothing when it is unset (not run by
//! systemd). Written here rather than taken from a crate: it is one `sendto`.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    // never wait for the reader: a notify socket nobody drains must not stall the I/O thread
    // (its queue holds ten datagrams); a message that does not fit is dropped
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    let path = path.to_string_lossy().into_owned();
    let sent = if let Some(abstract_name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::debug!("sd_notify {state:?} to {path}: {e}");
    }
}

/// Half the watchdog interval systemd asks for (`WatchdogSec=`), if it asks.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(100)))
}
