//! Shared test fixtures: keys, configs, sinks, spool inspection.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod parts;

use callvault::calls::Call;
use callvault::config::{AgentConfig, EXAMPLE_AGENT_TOML};
use callvault::pipeline::CallSink;
use callvault::record::CallRecord;
use callvault::spool::Spool;
use callvault::vault::{CataloguePrivateKey, CataloguePublicKey};

/// A fresh catalogue key pair.
pub fn test_keys() -> ((), Arc<CataloguePublicKey>, CataloguePrivateKey) {
    let (private, public) = CataloguePrivateKey::generate();
    ((), Arc::new(public), private)
}

pub fn example_config() -> AgentConfig {
    AgentConfig::from_toml(EXAMPLE_AGENT_TOML, "config/agent.toml").unwrap()
}

/// A config listing `numbers` (number, service) for `country`.
pub fn config_with(country: &str, numbers: &[(&str, &str)]) -> AgentConfig {
    let mut toml = format!("[scope]\ncountry = \"{country}\"\n");
    for (n, s) in numbers {
        toml.push_str(&format!(
            "[[scope.numbers]]\nnumber = \"{n}\"\nservice = \"{s}\"\n"
        ));
    }
    AgentConfig::from_toml(&toml, "test").unwrap()
}

/// Writes recorded calls to the spool and remembers every call decided.
pub struct CollectingSink {
    spool: Spool,
    pub recorded: Vec<CallRecord>,
    pub decided: Vec<String>,
    pub decisions: Vec<(String, bool, String)>,
}

impl CollectingSink {
    pub fn new(spool: Spool) -> Self {
        CollectingSink {
            spool,
            recorded: Vec::new(),
            decided: Vec::new(),
            decisions: Vec::new(),
        }
    }
}

impl CallSink for CollectingSink {
    fn recorded(&mut self, record: &CallRecord) -> std::io::Result<()> {
        self.spool.write_call(record)?;
        self.recorded.push(record.clone());
        Ok(())
    }
    fn decided(&mut self, call: &Call) {
        for leg in &call.legs {
            self.decided.push(leg.sip_call_id.clone());
            self.decisions.push((
                leg.sip_call_id.clone(),
                call.decision.record,
                call.decision.reason.clone(),
            ));
        }
    }
}

/// Every file under `dir`, recursively.
pub fn spool_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// An Ethernet/IPv4/UDP frame carrying `payload` (UDP checksum 0: allowed for IPv4).
pub fn udp_frame(
    src: std::net::SocketAddrV4,
    dst: std::net::SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(42 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A SIP message with an SDP body (`media` = "ip port"), Content-Length computed.
pub fn sip_with_sdp(head: &str, media: Option<(&str, u16)>) -> Vec<u8> {
    let body = match media {
        Some((ip, port)) => format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        ),
        None => String::new(),
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{}\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        head.trim_end(),
        body.len()
    )
    .into_bytes()
}

/// An RTP packet (PCMA, 160 bytes of payload).
pub fn rtp_packet(seq: u16, ts: u32, ssrc: u32, fill: u8) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(fill, 160));
    p
}

/// A port no other test of this run is given (a shared counter from a per-process base)
/// that is free now, for TCP and UDP.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 2_000) as u16 * 10,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// `GET path` on 127.0.0.1:`port`: (status, body), None if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text.split_once("\r\n\r\n")?.1.to_owned()))
}
