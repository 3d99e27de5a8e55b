//! HEP v3 receivers: UDP datagrams and TCP streams of HEP frames.
//!
//! Owns the sockets only: each packet is stamped with its arrival time and handed to the
//! pipeline thread untouched (parsing, auth-key check and counting happen there). UDP
//! datagrams carry the kernel's receive time (SO_TIMESTAMPNS), so a stall of the agent does
//! not retime what waited in the socket buffer, and the listener reports how far it has
//! drained (a watermark) whenever the socket is empty; TCP frames are timed when read. A full
//! pipeline queue drops the packet and counts it; a TCP stream that stops looking like HEP v3
//! is closed (counted) rather than resynchronised.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;

use tokio::io::AsyncReadExt;

use super::Input;
use super::af_packet::FrameBatch;
use super::merge::{Delivery, SourceId};
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

/// Packets handed to the pipeline thread in one message: one wake-up per burst, not per
/// packet (per-packet messages cost more than the pipeline's own work on them).
const BATCH_PACKETS: usize = 256;

fn push(batch: &mut FrameBatch, time: Timestamp, packet: &[u8]) {
    let start = batch.bytes.len() as u32;
    batch.bytes.extend_from_slice(packet);
    batch.frames.push((time, start, batch.bytes.len() as u32));
}

fn forward(tx: &SyncSender<Input>, source: SourceId, stats: &HepStats, batch: FrameBatch) {
    let n = batch.frames.len() as u64;
    if n == 0 {
        return;
    }
    stats.packets.fetch_add(n, Ordering::Relaxed);
    stats
        .bytes
        .fetch_add(batch.bytes.len() as u64, Ordering::Relaxed);
    let input = Input {
        source,
        delivery: Delivery::Hep(batch),
    };
    if tx.try_send(input).is_err() {
        stats.queue_drops.fetch_add(n, Ordering::Relaxed);
    }
}

/// How often an idle listener says it has nothing more (so that capture time moves on).
const IDLE_WATERMARK: std::time::Duration = std::time::Duration::from_millis(20);

pub async fn udp(
    sock: tokio::net::UdpSocket,
    source: SourceId,
    tx: SyncSender<Input>,
    stats: Arc<HepStats>,
) {
    receive_timestamps(&sock);
    let mut ring = ReceiveRing::new();
    loop {
        let readable = tokio::time::timeout(IDLE_WATERMARK, sock.readable()).await;
        match readable {
            Err(_) => {
                // nothing arrived for a while: everything before now has been handed over
                let _ = tx.try_send(Input {
                    source,
                    delivery: Delivery::Watermark(Timestamp::now()),
                });
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!("HEP UDP socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            Ok(Ok(())) => {}
        }
        // take everything already queued, up to a batch, in as few system calls as possible
        let mut batch = FrameBatch::default();
        let mut drained = false;
        while batch.frames.len() < BATCH_PACKETS {
            let before = Timestamp::now();
            let got = sock.try_io(tokio::io::Interest::READABLE, || {
                ring.receive(&sock, &mut batch, &stats)
            });
            let empty = match &got {
                Ok(n) => *n < RING_SLOTS,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            };
            match got {
                _ if empty => {
                    // the socket was empty before `before`: nothing stamped earlier is left
                    drained = true;
                    forward(&tx, source, &stats, std::mem::take(&mut batch));
                    let _ = tx.try_send(Input {
                        source,
                        delivery: Delivery::Watermark(before),
                    });
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if !drained {
            forward(&tx, source, &stats, batch);
        }
    }
}

/// Asks the kernel to stamp every datagram with its receive time.
fn receive_timestamps(sock: &tokio::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a c_int value on a socket we own.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::warn!(
            "HEP UDP: no kernel receive timestamps ({}): packets are timed when read",
            std::io::Error::last_os_error()
        );
    }
}

/// Datagrams received per `recvmmsg(2)` call.
const RING_SLOTS: usize = 64;
/// Bytes per slot: a HEP packet of a SIP message or RTP packet of a normal MTU fits; larger
/// ones (jumbo SIP over HEP) are truncated by the kernel and counted as malformed.
const SLOT_BYTES: usize = 9216;

/// Buffers for `recvmmsg(2)`: one system call for up to 64 datagrams, where `recv_from` takes
/// one per datagram (measured: the receive syscalls were the I/O thread's whole cost).
struct ReceiveRing {
    buffers: Vec<u8>,
    iov: Vec<libc::iovec>,
    /// Ancillary data per slot: the SCM_TIMESTAMPNS receive time.
    control: Vec<u64>,
    headers: Vec<libc::mmsghdr>,
}

/// Ancillary bytes per slot (8-aligned words): room for one `timespec` control message.
const CONTROL_WORDS: usize = 8;

// The raw pointers point into `buffers`, owned alongside them.
unsafe impl Send for ReceiveRing {}

impl ReceiveRing {
    fn new() -> Self {
        let mut buffers = vec![0u8; RING_SLOTS * SLOT_BYTES];
        let iov: Vec<libc::iovec> = buffers
            .chunks_exact_mut(SLOT_BYTES)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: SLOT_BYTES,
            })
            .collect();
        let mut ring = ReceiveRing {
            buffers,
            iov,
            control: vec![0u64; RING_SLOTS * CONTROL_WORDS],
            headers: Vec::with_capacity(RING_SLOTS),
        };
        for i in 0..RING_SLOTS {
            // SAFETY: an all-zero msghdr is valid (no name, no control data).
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = &mut ring.iov[i];
            h.msg_hdr.msg_iovlen = 1;
            ring.headers.push(h);
        }
        ring.reset_control();
        ring
    }

    /// Points each header at its control buffer again (the kernel shrinks msg_controllen).
    fn reset_control(&mut self) {
        for (i, h) in self.headers.iter_mut().enumerate() {
            h.msg_hdr.msg_control = self.control[i * CONTROL_WORDS..].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = CONTROL_WORDS * 8;
        }
    }

    /// The kernel's receive time of slot `i`, if it sent one.
    fn received_at(&self, i: usize) -> Option<Timestamp> {
        let h = &self.headers[i].msg_hdr;
        // SAFETY: CMSG_FIRSTHDR/NXTHDR walk the control buffer the kernel filled, within
        // msg_controllen; the data of an SCM_TIMESTAMPNS message is one timespec.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(h);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    return Some(Timestamp::from_secs_nanos(
                        ts.tv_sec.max(0) as u64,
                        ts.tv_nsec.clamp(0, 999_999_999) as u32,
                    ));
                }
                cmsg = libc::CMSG_NXTHDR(h, cmsg);
            }
        }
        None
    }

    /// Receives what is queued (without waiting) into `batch`; returns how many datagrams.
    fn receive(
        &mut self,
        sock: &tokio::net::UdpSocket,
        batch: &mut FrameBatch,
        stats: &HepStats,
    ) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let room = (BATCH_PACKETS - batch.frames.len()).min(RING_SLOTS);
        self.reset_control();
        // SAFETY: the headers point at `room` valid iovecs over `buffers`, all owned by self.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.headers.as_mut_ptr(),
                room as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, h) in self.headers.iter().take(n).enumerate() {
            let len = h.msg_len as usize;
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > SLOT_BYTES {
                stats.truncated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let start = i * SLOT_BYTES;
            let time = self.received_at(i).unwrap_or_else(Timestamp::now);
            push(batch, time, &self.buffers[start..start + len]);
        }
        Ok(n)
    }
}

pub async fn tcp(
    listener: tokio::net::TcpListener,
    source: SourceId,
    tx: SyncSender<Input>,
    stats: Arc<HepStats>,
) {
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
            if let Err(why) = tcp_stream(stream, source, &tx, &stats).await {
                stats.tcp_framing_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, "HEP TCP stream closed: {why}");
            }
        });
    }
}

/// Why a HEP TCP stream was closed.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a HEP v3 frame")]
    NotHep,
    #[error("HEP frame length {0} is shorter than its own header")]
    Length(usize),
}

/// Reads `HEP3 <u16 total length> chunks...` frames until the peer closes.
async fn tcp_stream(
    mut stream: tokio::net::TcpStream,
    source: SourceId,
    tx: &SyncSender<Input>,
    stats: &HepStats,
) -> Result<(), StreamError> {
    let mut header = [0u8; 6];
    loop {
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if &header[..4] != b"HEP3" {
            return Err(StreamError::NotHep);
        }
        let total = u16::from_be_bytes([header[4], header[5]]) as usize;
        if total < 6 {
            return Err(StreamError::Length(total));
        }
        let mut packet = vec![0u8; total];
        packet[..6].copy_from_slice(&header);
        stream.read_exact(&mut packet[6..]).await?;
        let mut batch = FrameBatch::default();
        push(&mut batch, Timestamp::now(), &packet);
        forward(tx, source, stats, batch);
    }
}
