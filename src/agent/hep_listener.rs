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
