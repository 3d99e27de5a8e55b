//! Live capture from a network interface: an AF_PACKET socket with a TPACKET_V3
//! memory-mapped ring.
//!
//! Owns the socket, the ring and the kernel's drop counters of one interface. Written on
//! `libc` rather than libpcap: it needs no C library on the recording server or the build
//! machine, and TPACKET_V3 hands over whole blocks of frames, one wake-up per block. It
//! copies frames out in batches and never parses them: decoding happens on the pipeline
//! thread.
// Reads frames the kernel wrote into a shared ring, lengths and offsets included: the same
// rules as the parsers of hostile input (no unwrap, no expect, no unchecked indexing).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::ffi::CString;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::merge::Delivery;
use crate::net::LinkType;
use crate::time::Timestamp;

const TPACKET_V3: libc::c_int = 2;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const TP_STATUS_USER: u32 = 1;
const PACKET_OUTGOING: u8 = 4;
const ETH_P_ALL: u16 = 0x0003;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NONE: u16 = 0xfffe;
/// Frames are at most this long in the ring (longer ones are cut; a SIP message that long
/// arrives fragmented at the IP layer anyway).
const SNAP_LEN: u32 = 65_535;
/// A block is handed to us after this long even if not full (latency bound at low rates).
pub const BLOCK_TIMEOUT_MS: u32 = 20;
/// Frame slots in a block (TPACKET_V3 packs frames of any size; the kernel still wants a
/// frame size that divides the block).
const FRAME_SIZE: u32 = 1 << 11;
/// Smallest block: a whole 64 KiB frame must fit in one.
const MIN_BLOCK: u32 = 128 << 10;

/// How a ring of `ring_mb` MiB is cut into blocks so that it holds `ring_seconds` of traffic.
///
/// The kernel retires a block every [`BLOCK_TIMEOUT_MS`] however few frames it holds, so at
/// low rates a ring of N blocks holds N × 20 ms whatever its size (64 MiB in 16 blocks of
/// 4 MiB held 0.32 s: a 0.7 s stall lost audio). Enough blocks for the seconds asked, each
/// as large as the memory allows, hold that long at any rate up to `ring_mb / ring_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingGeometry {
    pub block_size: u32,
    pub block_nr: u32,
}

impl RingGeometry {
    pub fn new(ring_mb: u32, ring_seconds: u32) -> RingGeometry {
        let block_nr = (ring_seconds.max(1) * 1000)
            .div_ceil(BLOCK_TIMEOUT_MS)
            .max(2);
        let bytes = ring_mb.max(1) as u64 * (1 << 20);
        // page-aligned (and so a whole number of frame slots)
        let block_size = ((bytes / block_nr as u64) as u32 & !4095).max(MIN_BLOCK);
        RingGeometry {
            block_size,
            block_nr,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.block_size as u64 * self.block_nr as u64
    }

    /// How long the ring holds traffic at a low rate (each block retired by its timeout).
    pub fn seconds(&self) -> f64 {
        self.block_nr as f64 * BLOCK_TIMEOUT_MS as f64 / 1000.0
    }

    /// The highest rate (bytes per second) at which it still holds [`Self::seconds`].
    pub fn rate_held(&self) -> f64 {
        self.bytes() as f64 / self.seconds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_holds_the_seconds_asked_for() {
        let g = RingGeometry::new(64, 4);
        assert_eq!(g.block_nr, 200);
        assert_eq!(g.seconds(), 4.0);
        assert_eq!(g.block_size % 4096, 0);
        assert!(g.bytes() <= 64 << 20 && g.bytes() > 60 << 20, "{g:?}");
        // about 16 MB/s: 80,000 packets/s of 200-byte RTP frames
        assert!(g.rate_held() > 15e6, "{}", g.rate_held());
        // a small ring still holds whole 64 KiB frames
        let small = RingGeometry::new(1, 4);
        assert_eq!(small.block_size, MIN_BLOCK);
        assert_eq!(small.block_nr, 200);
    }
}

#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

#[repr(C)]
struct TpacketStatsV3 {
    tp_packets: u32,
    tp_drops: u32,
    tp_freeze_q_cnt: u32,
}

#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

// Offsets in `struct tpacket_block_desc` / `tpacket_hdr_v1` and `struct tpacket3_hdr`
// (linux/if_packet.h), read with unaligned loads from the ring.
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
const PKT_NEXT: usize = 0;
const PKT_SEC: usize = 4;
const PKT_NSEC: usize = 8;
const PKT_SNAPLEN: usize = 12;
const PKT_MAC: usize = 24;
/// `struct sockaddr_ll` follows the header at TPACKET_ALIGN(sizeof(tpacket3_hdr)) = 48;
/// its `sll_pkttype` is at offset 10.
const PKT_SLL_PKTTYPE: usize = 48 + 10;

/// Frames copied out of the ring, sent to the pipeline thread as one message.
#[derive(Default)]
pub struct FrameBatch {
    pub link: Option<LinkType>,
    pub bytes: Vec<u8>,
    /// (capture time, start, end) in `bytes`.
    pub frames: Vec<(Timestamp, u32, u32)>,
}

impl FrameBatch {
    pub fn iter(&self) -> impl Iterator<Item = (Timestamp, &[u8])> {
        self.frames
            .iter()
            .filter_map(|&(t, a, b)| Some((t, self.bytes.get(a as usize..b as usize)?)))
    }
}

/// Counters of one interface, read by the metrics endpoint.
#[derive(Default, Debug)]
pub struct CaptureStats {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Frames the kernel dropped because the ring was full.
    pub kernel_drops: AtomicU64,
    /// Batches the pipeline's queue refused (frames lost inside the agent).
    pub queue_drops: AtomicU64,
}

pub struct PacketRing {
    fd: libc::c_int,
    map: *mut u8,
    map_len: usize,
    block_size: usize,
    block_nr: usize,
    next_block: usize,
    link: LinkType,
    loopback: bool,
    pub geometry: RingGeometry,
    pub name: String,
}

// The ring is only touched by the thread that owns the PacketRing.
unsafe impl Send for PacketRing {}

fn os_err(what: &str, iface: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{iface}: {what}: {e}"))
}

impl PacketRing {
    /// Opens `iface` with a ring of about `ring_mb` MiB that holds `ring_seconds` of traffic
    /// (see [`RingGeometry`]). Needs CAP_NET_RAW (and CAP_NET_ADMIN for `promiscuous`).
    pub fn open(
        iface: &str,
        ring_mb: u32,
        ring_seconds: u32,
        promiscuous: bool,
    ) -> io::Result<PacketRing> {
        let cname = CString::new(iface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
        // SAFETY: plain libc calls with valid arguments; every result is checked.
        unsafe {
            let ifindex = libc::if_nametoindex(cname.as_ptr());
            if ifindex == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{iface}: no such interface (see `ip link`)"),
                ));
            }
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                ETH_P_ALL.to_be() as libc::c_int,
            );
            if fd < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("{iface}: cannot open a packet socket: {e} (needs CAP_NET_RAW)"),
                ));
            }
            let mut ring = PacketRing {
                fd,
                map: ptr::null_mut(),
                map_len: 0,
                block_size: 0,
                block_nr: 0,
                next_block: 0,
                link: LinkType::Ethernet,
                loopback: false,
                geometry: RingGeometry::new(ring_mb, ring_seconds),
                name: iface.to_owned(),
            };
            let hw = hardware_type(fd, iface)?;
            ring.loopback = hw == ARPHRD_LOOPBACK;
            ring.link = match hw {
                ARPHRD_ETHER | ARPHRD_LOOPBACK => LinkType::Ethernet,
                ARPHRD_NONE => LinkType::Raw,
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!(
                            "{iface}: link type {other} is not supported (Ethernet, loopback and raw IP are)"
                        ),
                    ));
                }
            };
            let version: libc::c_int = TPACKET_V3;
            if setsockopt(fd, PACKET_VERSION, &version) < 0 {
                return Err(os_err("TPACKET_V3 not available", iface));
            }
            let geometry = RingGeometry::new(ring_mb, ring_seconds);
            let (block_size, block_nr) = (geometry.block_size, geometry.block_nr);
            let frame_size: u32 = FRAME_SIZE;
            let req = TpacketReq3 {
                tp_block_size: block_size,
                tp_block_nr: block_nr,
                tp_frame_size: frame_size,
                tp_frame_nr: block_size / frame_size * block_nr,
                tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            if setsockopt(fd, PACKET_RX_RING, &req) < 0 {
                return Err(os_err("cannot set up the capture ring", iface));
            }
            ring.block_size = block_size as usize;
            ring.block_nr = block_nr as usize;
            ring.geometry = geometry;
            ring.map_len = ring.block_size * ring.block_nr;
            let map = libc::mmap(
                ptr::null_mut(),
                ring.map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            if map == libc::MAP_FAILED {
                ring.map_len = 0;
                return Err(os_err("cannot map the capture ring", iface));
            }
            ring.map = map.cast();
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_ALL.to_be();
            sll.sll_ifindex = ifindex as i32;
            if libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) < 0
            {
                return Err(os_err("cannot bind to the interface", iface));
            }
            if promiscuous {
                let mreq = PacketMreq {
                    mr_ifindex: ifindex as libc::c_int,
                    mr_type: PACKET_MR_PROMISC,
                    mr_alen: 0,
                    mr_address: [0; 8],
                };
                if setsockopt(fd, PACKET_ADD_MEMBERSHIP, &mreq) < 0 {
                    return Err(os_err(
                        "cannot enable promiscuous mode (needs CAP_NET_ADMIN)",
                        iface,
                    ));
                }
            }
            // Frames queued before the ring existed are dropped: reset the counters.
            ring.read_kernel_drops();
            Ok(ring)
        }
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Waits up to `timeout` for a block of frames and copies them into `batch`. Returns the
    /// number of frames copied (0 on timeout).
    pub fn next_block(&mut self, timeout: Duration, batch: &mut FrameBatch) -> io::Result<usize> {
        let block = self.block_ptr(self.next_block);
        if !self.block_ready(block) {
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(0);
                }
                return Err(e);
            }
            if !self.block_ready(block) {
                return Ok(0);
            }
        }
        let n = self.copy_block(block, batch);
        // hand the block back to the kernel
        std::sync::atomic::fence(Ordering::Release);
        // SAFETY: `block` points at a block header inside the mapping.
        unsafe { ptr::write_volatile(block.add(BLOCK_STATUS).cast::<u32>(), 0) };
        self.next_block = (self.next_block + 1) % self.block_nr;
        Ok(n)
    }

    fn block_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: i < block_nr, so the offset stays inside the mapping.
        unsafe { self.map.add(i * self.block_size) }
    }

    fn block_ready(&self, block: *mut u8) -> bool {
        // SAFETY: the status word lies inside the mapping; the kernel writes it.
        let status = unsafe { ptr::read_volatile(block.add(BLOCK_STATUS).cast::<u32>()) };
        std::sync::atomic::fence(Ordering::Acquire);
        status & TP_STATUS_USER != 0
    }

    fn copy_block(&self, block: *mut u8, batch: &mut FrameBatch) -> usize {
        // SAFETY: the kernel has handed the block to us (TP_STATUS_USER); every offset read
        // from it is checked against the block size before it is used.
        let data = unsafe { std::slice::from_raw_parts(block as *const u8, self.block_size) };
        let u32_at = |at: usize| -> Option<u32> {
            data.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let num = u32_at(BLOCK_NUM_PKTS).unwrap_or(0) as usize;
        let mut at = u32_at(BLOCK_FIRST_PKT).unwrap_or(0) as usize;
        let mut copied = 0;
        for _ in 0..num {
            let (Some(next), Some(sec), Some(nsec), Some(snap)) = (
                u32_at(at + PKT_NEXT),
                u32_at(at + PKT_SEC),
                u32_at(at + PKT_NSEC),
                u32_at(at + PKT_SNAPLEN),
            ) else {
                break;
            };
            let mac = data
                .get(at + PKT_MAC..at + PKT_MAC + 2)
                .and_then(|b| b.try_into().ok())
                .map(|b| u16::from_ne_bytes(b) as usize)
                .unwrap_or(0);
            let pkttype = data.get(at + PKT_SLL_PKTTYPE).copied().unwrap_or(0);
            // On loopback every packet is seen twice, leaving and arriving: keep one.
            let duplicate = self.loopback && pkttype == PACKET_OUTGOING;
            if !duplicate
                && let Some(frame) = data.get(at + mac..at + mac + snap.min(SNAP_LEN) as usize)
            {
                let start = batch.bytes.len() as u32;
                batch.bytes.extend_from_slice(frame);
                let time = Timestamp::from_nanos(sec as u64 * 1_000_000_000 + nsec as u64);
                batch.frames.push((time, start, batch.bytes.len() as u32));
                copied += 1;
            }
            if next == 0 {
                break;
            }
            at += next as usize;
        }
        copied
    }

    /// Frames the kernel dropped since the last call (the kernel resets its counter on read).
    pub fn read_kernel_drops(&mut self) -> u64 {
        let mut stats = TpacketStatsV3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: `stats` is large enough for what PACKET_STATISTICS returns for V3.
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut stats as *mut TpacketStatsV3).cast(),
                &mut len,
            )
        };
        if r < 0 { 0 } else { stats.tp_drops as u64 }
    }
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // SAFETY: the mapping and descriptor were created by `open` and are released once.
        unsafe {
            if !self.map.is_null() && self.map_len > 0 {
                libc::munmap(self.map.cast(), self.map_len);
            }
            libc::close(self.fd);
        }
    }
}

unsafe fn setsockopt<T>(fd: libc::c_int, opt: libc::c_int, value: &T) -> libc::c_int {
    // SAFETY: `value` is a valid T for the duration of the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    }
}

/// The interface's ARPHRD_* type (SIOCGIFHWADDR).
fn hardware_type(fd: libc::c_int, iface: &str) -> io::Result<u16> {
    // SAFETY: ifreq is plain data; the name is copied with its bound checked.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(iface.bytes().take(15)) {
            *dst = src as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) < 0 {
            return Err(os_err("cannot read the link type", iface));
        }
        Ok(req.ifr_ifru.ifru_hwaddr.sa_family)
    }
}

/// Runs the capture loop of one interface until `stop`: each block of frames goes to `send`
/// (which must not block; it returns false when the pipeline's queue refused the batch).
/// Whenever no block is ready, it says how far the ring has been drained (a watermark: a
/// frame captured earlier than a block timeout or two ago is in a block already handed over).
pub fn run(
    mut ring: PacketRing,
    stats: &CaptureStats,
    stop: &AtomicBool,
    send: &mut dyn FnMut(Delivery) -> bool,
) -> io::Result<()> {
    let link = ring.link();
    let mut polls = 0u32;
    let lag = Duration::from_millis(BLOCK_TIMEOUT_MS as u64 * 5 / 2);
    while !stop.load(Ordering::Relaxed) {
        let mut batch = FrameBatch {
            link: Some(link),
            ..Default::default()
        };
        let n = ring.next_block(Duration::from_millis(BLOCK_TIMEOUT_MS as u64), &mut batch)?;
        if n > 0 {
            stats.frames.fetch_add(n as u64, Ordering::Relaxed);
            stats
                .bytes
                .fetch_add(batch.bytes.len() as u64, Ordering::Relaxed);
            if !send(Delivery::Frames(batch)) {
                stats.queue_drops.fetch_add(n as u64, Ordering::Relaxed);
            }
        } else {
            send(Delivery::Watermark(Timestamp::now() - lag));
        }
        polls += 1;
        if n == 0 || polls.is_multiple_of(64) {
            let drops = ring.read_kernel_drops();
            stats.kernel_drops.fetch_add(drops, Ordering::Relaxed);
        }
    }
    Ok(())
}
