//! Capture file writers: classic libpcap and pcapng.
//!
//! Owns: the file and record/block framing (libpcap global header in µs or ns resolution and
//! either byte order; pcapng SHB, IDBs with if_tsresol, EPBs, SPBs). Receives frames with
//! their capture time; emits bytes to any `io::Write`. It also writes the rarer shapes
//! (a second interface, simple packet blocks, truncated records) so reader tests can use it.
//! Must never reorder, buffer or inspect frames, and never allocate per frame.

use std::io::{self, Write};

use super::scenario::LinkKind;
use std::time::Duration;

/// Snap length written in headers; frames are never longer.
pub const SNAPLEN: u32 = 262_144;

/// Classic libpcap writer.
pub struct PcapWriter<W: Write> {
    out: W,
    nanos: bool,
    big_endian: bool,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header: magic a1b2c3d4 (µs) or a1b23c4d (ns), version 2.4.
    pub fn new(out: W, link: LinkKind, nanos: bool, big_endian: bool) -> io::Result<Self> {
        let mut w = PcapWriter {
            out,
            nanos,
            big_endian,
            bytes: 0,
        };
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut h = [0u8; 24];
        w.put32(&mut h[0..4], magic);
        w.put16(&mut h[4..6], 2);
        w.put16(&mut h[6..8], 4);
        // thiszone and sigfigs stay 0.
        w.put32(&mut h[16..20], SNAPLEN);
        w.put32(&mut h[20..24], link.linktype());
        w.emit(&h)?;
        Ok(w)
    }

    fn put16(&self, dst: &mut [u8], v: u16) {
        dst.copy_from_slice(&if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    fn put32(&self, dst: &mut [u8], v: u32) {
        dst.copy_from_slice(&if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    fn emit(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    /// One record holding all of `data`.
    pub fn write_packet(&mut self, ts: Duration, data: &[u8]) -> io::Result<()> {
        self.write_truncated(ts, data, data.len() as u32)
    }

    /// One record holding `data` that was cut from an `orig_len`-byte frame.
    pub fn write_truncated(&mut self, ts: Duration, data: &[u8], orig_len: u32) -> io::Result<()> {
        let ns = ts.as_nanos() as u64;
        let secs = (ns / 1_000_000_000) as u32;
        let frac = (ns % 1_000_000_000) as u32;
        let frac = if self.nanos { frac } else { frac / 1_000 };
        let mut h = [0u8; 16];
        self.put32(&mut h[0..4], secs);
        self.put32(&mut h[4..8], frac);
        self.put32(&mut h[8..12], data.len() as u32);
        self.put32(&mut h[12..16], orig_len.max(data.len() as u32));
        self.emit(&h)?;
        self.emit(data)
    }

    /// Bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const SPB: u32 = 3;
const EPB: u32 = 6;
const OPT_END: u16 = 0;
const IF_TSRESOL: u16 = 9;

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// pcapng writer (little-endian sections).
pub struct PcapNgWriter<W: Write> {
    out: W,
    /// Per interface: timestamp units per second.
    resolution: Vec<u64>,
    bytes: u64,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes a section header and interface 0.
    pub fn new(out: W, link: LinkKind, nanos: bool) -> io::Result<Self> {
        let mut w = PcapNgWriter {
            out,
            resolution: Vec::new(),
            bytes: 0,
        };
        let mut shb = [0u8; 28];
        shb[0..4].copy_from_slice(&SHB.to_le_bytes());
        shb[4..8].copy_from_slice(&28u32.to_le_bytes());
        shb[8..12].copy_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb[12..14].copy_from_slice(&1u16.to_le_bytes());
        shb[14..16].copy_from_slice(&0u16.to_le_bytes());
        // Section length unknown.
        shb[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        shb[24..28].copy_from_slice(&28u32.to_le_bytes());
        w.emit(&shb)?;
        w.add_interface(link, nanos)?;
        Ok(w)
    }

    fn emit(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    /// Adds an interface description block; returns its interface id. Nanosecond interfaces
    /// carry if_tsresol = 9; others use the default microseconds.
    pub fn add_interface(&mut self, link: LinkKind, nanos: bool) -> io::Result<u32> {
        let mut b = [0u8; 32];
        let len: u32 = if nanos { 32 } else { 20 };
        b[0..4].copy_from_slice(&IDB.to_le_bytes());
        b[4..8].copy_from_slice(&len.to_le_bytes());
        b[8..10].copy_from_slice(&(link.linktype() as u16).to_le_bytes());
        b[12..16].copy_from_slice(&SNAPLEN.to_le_bytes());
        let mut at = 16;
        if nanos {
            b[16..18].copy_from_slice(&IF_TSRESOL.to_le_bytes());
            b[18..20].copy_from_slice(&1u16.to_le_bytes());
            b[20] = 9;
            b[24..26].copy_from_slice(&OPT_END.to_le_bytes());
            at = 28;
        }
        b[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.emit(&b[..len as usize])?;
        self.resolution
            .push(if nanos { 1_000_000_000 } else { 1_000_000 });
        Ok(self.resolution.len() as u32 - 1)
    }

    /// An enhanced packet block on interface 0.
    pub fn write_packet(&mut self, ts: Duration, data: &[u8]) -> io::Result<()> {
        self.write_packet_on(0, ts, data, data.len() as u32)
    }

    /// An enhanced packet block on `interface`, recording `orig_len` (≥ data.len()).
    pub fn write_packet_on(
        &mut self,
        interface: u32,
        ts: Duration,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        let res = self
            .resolution
            .get(interface as usize)
            .copied()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no pcapng interface {interface}"),
                )
            })?;
        let units = ts.as_nanos() * res as u128 / 1_000_000_000;
        let units = units.min(u64::MAX as u128) as u64;
        let pad = pad4(data.len());
        let len = (32 + data.len() + pad) as u32;
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&EPB.to_le_bytes());
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h[8..12].copy_from_slice(&interface.to_le_bytes());
        h[12..16].copy_from_slice(&((units >> 32) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(units as u32).to_le_bytes());
        h[20..24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[24..28].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.emit(&h)?;
        self.emit(data)?;
        self.emit(&[0u8; 3][..pad])?;
        self.emit(&len.to_le_bytes())
    }

    /// A simple packet block (no timestamp, interface 0).
    pub fn write_simple_packet(&mut self, data: &[u8]) -> io::Result<()> {
        let pad = pad4(data.len());
        let len = (16 + data.len() + pad) as u32;
        let mut h = [0u8; 12];
        h[0..4].copy_from_slice(&SPB.to_le_bytes());
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.emit(&h)?;
        self.emit(data)?;
        self.emit(&[0u8; 3][..pad])?;
        self.emit(&len.to_le_bytes())
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_parser::traits::PcapNGPacketBlock;
    use pcap_parser::{Block, PcapBlockOwned, PcapError, create_reader};

    /// (seconds, fraction, data) of every packet record, read back with pcap-parser.
    fn read_legacy(bytes: &[u8]) -> (u32, Vec<(u32, u32, Vec<u8>)>) {
        let mut reader = create_reader(65_536, bytes).expect("reader");
        let mut linktype = 0;
        let mut out = Vec::new();
        loop {
            match reader.next() {
                Ok((offset, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => linktype = h.network.0 as u32,
                        PcapBlockOwned::Legacy(b) => {
                            out.push((b.ts_sec, b.ts_usec, b.data.to_vec()))
                        }
                        PcapBlockOwned::NG(_) => panic!("not legacy"),
                    }
                    reader.consume(offset);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
                Err(e) => panic!("{e:?}"),
            }
        }
        (linktype, out)
    }

    #[test]
    fn classic_pcap_round_trips_in_every_flavour() {
        let ts = Duration::new(1_772_442_000, 123_456_789);
        for (nanos, be) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut w = PcapWriter::new(Vec::new(), LinkKind::LinuxSll2, nanos, be).unwrap();
            w.write_packet(ts, b"hello").unwrap();
            w.write_truncated(ts, b"abc", 100).unwrap();
            assert_eq!(w.bytes_written(), 24 + 16 + 5 + 16 + 3);
            let bytes = w.into_inner();
            let (lt, pkts) = read_legacy(&bytes);
            assert_eq!(lt, 276);
            assert_eq!(pkts.len(), 2);
            assert_eq!(pkts[0].0, 1_772_442_000);
            assert_eq!(pkts[0].1, if nanos { 123_456_789 } else { 123_456 });
            assert_eq!(pkts[0].2, b"hello");
            let magic = &bytes[0..4];
            let expect: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
            assert_eq!(
                magic,
                if be {
                    expect.to_be_bytes()
                } else {
                    expect.to_le_bytes()
                }
            );
        }
    }

    #[test]
    fn pcapng_with_two_interfaces_and_a_simple_block_reads_back() {
        let mut w = PcapNgWriter::new(Vec::new(), LinkKind::Ethernet, true).unwrap();
        let second = w.add_interface(LinkKind::Raw, false).unwrap();
        assert_eq!(second, 1);
        let ts = Duration::new(1_772_442_000, 5_000_123);
        w.write_packet(ts, b"frame").unwrap();
        w.write_packet_on(1, ts, b"ip-packet", 9).unwrap();
        w.write_simple_packet(b"simple!").unwrap();
        assert!(w.write_packet_on(7, ts, b"x", 1).is_err());
        let bytes = w.into_inner();
        assert_eq!(bytes.len() % 4, 0);

        let mut reader = create_reader(65_536, &bytes[..]).expect("reader");
        let (mut idbs, mut epbs, mut spbs) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            match reader.next() {
                Ok((offset, block)) => {
                    if let PcapBlockOwned::NG(b) = block {
                        match b {
                            Block::InterfaceDescription(i) => {
                                idbs.push((i.linktype.0, i.ts_resolution().unwrap_or(0)))
                            }
                            Block::EnhancedPacket(e) => {
                                epbs.push((e.if_id, e.ts_high, e.ts_low, e.packet_data().to_vec()))
                            }
                            Block::SimplePacket(s) => spbs.push(s.packet_data().to_vec()),
                            _ => {}
                        }
                    }
                    reader.consume(offset);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(idbs, [(1, 1_000_000_000), (101, 1_000_000)]);
        assert_eq!(epbs.len(), 2);
        let ns = ((epbs[0].1 as u64) << 32) | epbs[0].2 as u64;
        assert_eq!(ns, ts.as_nanos() as u64);
        let us = ((epbs[1].1 as u64) << 32) | epbs[1].2 as u64;
        assert_eq!(us, ts.as_nanos() as u64 / 1_000);
        assert_eq!(epbs[0].3, b"frame");
        assert_eq!(epbs[1].3, b"ip-packet");
        assert_eq!(spbs, [b"simple!".to_vec()]);
    }
}
