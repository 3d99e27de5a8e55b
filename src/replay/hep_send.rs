//! `callvault hep-send`: re-sends the SIP and RTP of capture files as a HEP v3 feed.
//!
//! What heplify or Kamailio's siptrace would have sent for that traffic: each SIP message
//! and RTP packet becomes one HEP packet with its original addresses and capture time, over
//! UDP or TCP, paced in capture time (`--speed 1` = real time, 0 = as fast as possible).
//! For trials of the agent's HEP input, tests, and load measurements.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::net::{HepOut, NetConfig, NetDecoder, Transport, encode_hep};
use crate::rtp::looks_like_rtp;
use crate::sip::looks_like_sip;
use crate::source::CaptureFile;
use crate::time::Timestamp;

pub struct HepSendOptions {
    pub to: SocketAddr,
    pub tcp: bool,
    pub auth_key: Option<String>,
    /// Capture-time speed-up: 1.0 real time, 0 as fast as possible.
    pub speed: f64,
    pub capture_id: u32,
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct HepSendReport {
    pub sip: u64,
    pub rtp: u64,
    /// Datagrams neither SIP nor RTP (RTCP, DNS, ...): not sent.
    pub skipped: u64,
    /// Packets too large for one HEP packet: not sent.
    pub too_large: u64,
    pub send_errors: u64,
    pub bytes: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

enum Link {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

pub fn run(opts: &HepSendOptions) -> anyhow::Result<HepSendReport> {
    let link = if opts.tcp {
        let s = TcpStream::connect(opts.to)
            .with_context(|| format!("cannot connect to {} over TCP", opts.to))?;
        s.set_nodelay(true)?;
        Link::Tcp(s)
    } else {
        let bind: SocketAddr = if opts.to.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let s = UdpSocket::bind(bind)?;
        s.connect(opts.to)
            .with_context(|| format!("cannot send to {}", opts.to))?;
        Link::Udp(s)
    };
    let mut link = link;
    let mut report = HepSendReport::default();
    let mut net = NetDecoder::new(NetConfig::default());
    let started = Instant::now();
    let mut first: Option<Timestamp> = None;
    let mut packets: Vec<(Timestamp, Vec<u8>)> = Vec::new();
    for path in &opts.files {
        let mut file = CaptureFile::open(path)?;
        loop {
            let more = file.read(256, &mut |t, link_type, frame| {
                net.frame(t, link_type, frame, &mut |dg| {
                    let (ip_protocol, proto_type) = match dg.transport {
                        Transport::Udp if looks_like_rtp(dg.payload) => {
                            report.rtp += 1;
                            (17, crate::net::hep::PROTO_TYPE_RTP)
                        }
                        Transport::Udp if looks_like_sip(dg.payload) => {
                            report.sip += 1;
                            (17, crate::net::hep::PROTO_TYPE_SIP)
                        }
                        Transport::Tcp if looks_like_sip(dg.payload) => {
                            report.sip += 1;
                            (6, crate::net::hep::PROTO_TYPE_SIP)
                        }
                        _ => {
                            report.skipped += 1;
                            return;
                        }
                    };
                    let mut out = Vec::with_capacity(dg.payload.len() + 96);
                    let ok = encode_hep(
                        &HepOut {
                            time: dg.time,
                            src: dg.src,
                            dst: dg.dst,
                            ip_protocol,
                            proto_type,
                            capture_id: opts.capture_id,
                            auth_key: opts.auth_key.as_deref().map(str::as_bytes),
                            payload: dg.payload,
                        },
                        &mut out,
                    );
                    if ok {
                        packets.push((dg.time, out));
                    } else {
                        report.too_large += 1;
                    }
                });
            })?;
            for (time, packet) in packets.drain(..) {
                let t0 = *first.get_or_insert(time);
                if opts.speed > 0.0 {
                    let due = time.saturating_since(t0).div_f64(opts.speed);
                    let now = started.elapsed();
                    if due > now + Duration::from_millis(1) {
                        std::thread::sleep(due - now);
                    }
                }
                let sent = match &mut link {
                    Link::Udp(s) => s.send(&packet).map(drop),
                    Link::Tcp(s) => s.write_all(&packet),
                };
                match sent {
                    Ok(()) => report.bytes += packet.len() as u64,
                    Err(e) if opts.tcp => {
                        return Err(e).with_context(|| format!("sending to {}", opts.to));
                    }
                    Err(_) => report.send_errors += 1,
                }
            }
            if !more {
                break;
            }
        }
    }
    if let Link::Tcp(s) = &mut link {
        s.flush()?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
