//! HEP v3 receivers: UDP datagrams and TCP streams of HEP frames.
//!
//! Owns the sockets only: each packet is stamped with its arrival time and handed to the
//! pipeline thread untouched (parsing, auth-key check and counting happen there). A full
//! pipeline queue drops the packet and counts it; a TCP stream that stops looking like HEP v3
//! is closed (counted) rather than resynchronised.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;

use tokio::io::AsyncReadExt;

use super::Input;
use super::metrics::HepStats;
use crate::time::Timestamp;

/// At most this many HEP TCP connections at once (each is a sender: a proxy or a PBX).
const MAX_TCP_CONNECTIONS: usize = 256;

/// Receive buffer asked for on the HEP UDP socket: a burst of a few thousand calls' RTP
/// waits here while the I/O thread is descheduled. SO_RCVBUFFORCE (CAP_NET_ADMIN) lifts the
/// `net.core.rmem_max` cap; without it the kernel caps the size (raise rmem_max then).
const UDP_RECEIVE_BUFFER: libc::c_int = 32 << 20;

/// Sizes the receive buffer of the HEP UDP socket.
pub fn enlarge_receive_buffer(sock: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let size = UDP_RECEIVE_BUFFER;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt with a c_int value on a socket we own.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                len,
            )
        };
        if r == 0 {
            return;
        }
    }
}

/// Datagrams the kernel dropped on the UDP socket bound to `port` because its receive buffer
/// was full (the `drops` column of /proc/net/udp and udp6).
pub fn socket_drops(port: u16) -> u64 {
    let mut total = 0;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                total += fields
                    .last()
                    .and_then(|d| d.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

fn forward(tx: &SyncSender<Input>, stats: &HepStats, packet: Vec<u8>) {
    stats.packets.fetch_add(1, Ordering::Relaxed);
    stats
        .bytes
        .fetch_add(packet.len() as u64, Ordering::Relaxed);
    let input = Input::Hep {
        arrival: Timestamp::now(),
        packet,
    };
    if tx.try_send(input).is_err() {
        stats.queue_drops.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn udp(sock: tokio::net::UdpSocket, tx: SyncSender<Input>, stats: Arc<HepStats>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, _)) => forward(&tx, &stats, buf[..n].to_vec()),
            Err(e) => {
                tracing::warn!("HEP UDP receive: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

pub async fn tcp(listener: tokio::net::TcpListener, tx: SyncSender<Input>, stats: Arc<HepStats>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("HEP TCP accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "HEP TCP: too many connections; refused");
            continue;
        };
        stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let (tx, stats) = (tx.clone(), stats.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(why) = tcp_stream(stream, &tx, &stats).await {
                stats.tcp_framing_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, "HEP TCP stream closed: {why}");
            }
        });
    }
}

/// Reads `HEP3 <u16 total length> chunks...` frames until the peer closes.
async fn tcp_stream(
    mut stream: tokio::net::TcpStream,
    tx: &SyncSender<Input>,
    stats: &HepStats,
) -> Result<(), String> {
    let mut header = [0u8; 6];
    loop {
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        if &header[..4] != b"HEP3" {
            return Err("not a HEP v3 frame".into());
        }
        let total = u16::from_be_bytes([header[4], header[5]]) as usize;
        if total < 6 {
            return Err(format!("HEP frame length {total}"));
        }
        let mut packet = vec![0u8; total];
        packet[..6].copy_from_slice(&header);
        stream
            .read_exact(&mut packet[6..])
            .await
            .map_err(|e| e.to_string())?;
        forward(tx, stats, packet);
    }
}
