//! pcap and pcapng files, through pcap-parser (pure Rust, streaming: replay needs no libpcap).
//!
//! Handled: classic pcap in both byte orders with micro- or nanosecond timestamps; pcapng with
//! several sections and interfaces, each with its own link type and timestamp resolution and
//! offset; Enhanced and Simple Packet Blocks (an SPB has no timestamp: it takes the previous
//! packet's).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

use crate::net::LinkType;
use crate::time::Timestamp;

/// Largest pcapng block accepted (the buffer grows up to this, no further).
const MAX_BLOCK: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path}: damaged after {offset} bytes ({reason}); the frames before it were read")]
    Damaged {
        path: PathBuf,
        offset: usize,
        reason: String,
    },
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: Option<LinkType>,
    /// Timestamp units per second.
    resolution: u64,
    offset_secs: i64,
}

/// Counters of one file.
#[derive(Clone, Debug, Default)]
pub struct FileCounters {
    pub frames: u64,
    pub unsupported_link: u64,
    pub blocks_skipped: u64,
}

pub struct CaptureFile {
    path: PathBuf,
    reader: Box<dyn PcapReaderIterator + Send>,
    size: u64,
    legacy: Option<(Option<LinkType>, bool)>,
    interfaces: Vec<Interface>,
    last_time: Timestamp,
    pub counters: FileCounters,
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, SourceError> {
        let file = File::open(path).map_err(|e| SourceError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Self::from_reader(path, size, BufReader::new(file))
    }

    /// A capture held in memory (`name` is what errors call it): the fuzz targets read
    /// whole files this way.
    pub fn from_bytes(name: &Path, data: Vec<u8>) -> Result<CaptureFile, SourceError> {
        let size = data.len() as u64;
        Self::from_reader(name, size, std::io::Cursor::new(data))
    }

    fn from_reader(
        path: &Path,
        size: u64,
        input: impl std::io::Read + Send + 'static,
    ) -> Result<CaptureFile, SourceError> {
        let open_err = |reason: String| SourceError::Open {
            path: path.to_owned(),
            reason,
        };
        let reader = create_reader(1 << 20, input).map_err(|e| {
            open_err(match e {
                PcapError::Eof => "empty file".to_owned(),
                PcapError::HeaderNotRecognized => "not a pcap or pcapng capture".to_owned(),
                other => format!("cannot read capture header: {other:?}"),
            })
        })?;
        Ok(CaptureFile {
            path: path.to_owned(),
            reader,
            size,
            legacy: None,
            interfaces: Vec::new(),
            last_time: Timestamp::ZERO,
            counters: FileCounters::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of the file consumed so far (for progress).
    pub fn consumed(&self) -> u64 {
        self.reader.consumed() as u64
    }

    /// Reads up to `max_frames` frames, calling `f` for each; returns false at end of file.
    pub fn read(
        &mut self,
        max_frames: usize,
        f: &mut dyn FnMut(Timestamp, LinkType, &[u8]),
    ) -> Result<bool, SourceError> {
        let mut n = 0;
        while n < max_frames {
            match self.reader.next() {
                Ok((offset, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            self.legacy = Some((
                                LinkType::from_pcap(h.network.0 as u32),
                                h.is_nanosecond_precision(),
                            ));
                        }
                        PcapBlockOwned::Legacy(b) => {
                            n += 1;
                            self.counters.frames += 1;
                            let (link, nanos) = self.legacy.unwrap_or((None, false));
                            let frac = if nanos {
                                b.ts_usec.min(999_999_999)
                            } else {
                                b.ts_usec.min(999_999).saturating_mul(1000)
                            };
                            let t = Timestamp::from_secs_nanos(b.ts_sec as u64, frac);
                            self.last_time = t;
                            match link {
                                Some(l) => f(t, l, b.data),
                                None => self.counters.unsupported_link += 1,
                            }
                        }
                        PcapBlockOwned::NG(block) => match block {
                            Block::SectionHeader(_) => self.interfaces.clear(),
                            Block::InterfaceDescription(idb) => {
                                if self.interfaces.len() < 1024 {
                                    self.interfaces.push(Interface {
                                        link: LinkType::from_pcap(idb.linktype.0 as u32),
                                        resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                                        offset_secs: idb.ts_offset(),
                                    });
                                }
                            }
                            Block::EnhancedPacket(epb) => {
                                n += 1;
                                self.counters.frames += 1;
                                let iface = self.interfaces.get(epb.if_id as usize).copied();
                                let Some(iface) = iface else {
                                    self.counters.unsupported_link += 1;
                                    self.reader.consume(offset);
                                    continue;
                                };
                                let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                                let secs = (raw / iface.resolution) as i64 + iface.offset_secs;
                                let frac = raw % iface.resolution;
                                let nanos = (frac as u128 * 1_000_000_000
                                    / iface.resolution as u128)
                                    as u32;
                                let t = Timestamp::from_secs_nanos(secs.max(0) as u64, nanos);
                                self.last_time = t;
                                let caplen = (epb.caplen as usize).min(epb.data.len());
                                match iface.link {
                                    Some(l) => f(t, l, epb.data.get(..caplen).unwrap_or_default()),
                                    None => self.counters.unsupported_link += 1,
                                }
                            }
                            Block::SimplePacket(spb) => {
                                n += 1;
                                self.counters.frames += 1;
                                let link = self.interfaces.first().and_then(|i| i.link);
                                let caplen = (spb.origlen as usize).min(spb.data.len());
                                match link {
                                    Some(l) => f(
                                        self.last_time,
                                        l,
                                        spb.data.get(..caplen).unwrap_or_default(),
                                    ),
                                    None => self.counters.unsupported_link += 1,
                                }
                            }
                            _ => self.counters.blocks_skipped += 1,
                        },
                    }
                    self.reader.consume(offset);
                }
                Err(PcapError::Eof) => return Ok(false),
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.reader_exhausted() {
                        // A capture cut short mid-record (tcpdump killed): everything before
                        // it was read; the tail is not a frame.
                        return Ok(false);
                    }
                    let before = self.reader.data().len();
                    if let Err(e) = self.reader.refill() {
                        let reason = format!("{e:?}");
                        return Err(self.damaged(reason));
                    }
                    if self.reader.data().len() <= before {
                        if self.reader.reader_exhausted() {
                            return Ok(false);
                        }
                        // A block larger than the buffer: grow it, within reason.
                        let want = before.saturating_mul(2);
                        if want > MAX_BLOCK || !self.reader.grow(want) {
                            return Err(self.damaged("block larger than 64 MiB".to_owned()));
                        }
                    }
                }
                Err(e) => {
                    let reason = format!("{e:?}");
                    return Err(self.damaged(reason));
                }
            }
        }
        Ok(true)
    }

    fn damaged(&self, reason: String) -> SourceError {
        SourceError::Damaged {
            path: self.path.clone(),
            offset: self.reader.consumed(),
            reason,
        }
    }
}
