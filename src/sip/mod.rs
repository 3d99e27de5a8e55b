//! SIP signalling parser of the passive recorder: turns the bytes of one SIP message (a UDP
//! payload, or one message framed out of a TCP stream by the net stage) into a borrowed
//! [`Message`] view, and an SDP body into an owned [`Sdp`].
//!
//! Hand-written rather than taken from a SIP crate because the recorder only watches: it must
//! read whatever real endpoints send (compact and folded headers, LF-only lines, broken
//! Content-Length, unbracketed IPv6, junk before the start line) where a strict stack would
//! reject the message.
//!
//! It never fails a whole message for one bad header, never panics on any input, bounds every
//! allocation (message size, header count, media sections, list lengths), and never performs
//! I/O or keeps state between messages.
// A parsing stage of hostile input: no unwrap, no expect, no unchecked indexing (a fuzz
// target guards each parser; README "Fuzzing").
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod header;
pub mod message;
pub mod sdp;
pub mod uri;

pub use header::{Header, HeaderName};
pub use message::{
    CSeq, HistoryEntry, MAX_HEADERS, MAX_MESSAGE_LEN, Message, Method, StartLine,
    leading_keepalive_len, looks_like_sip, parse,
};
pub use sdp::{Direction, Fmtp, Media, MediaKind, RtpMap, Sdp, parse_sdp};
pub use uri::{NameAddr, Replaces, Uri};

/// Why bytes could not be read as a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("not SIP: the first line is neither a SIP request line nor a SIP status line")]
    NotSip,
    #[error("SIP start line is cut off: the bytes end before it is complete")]
    Truncated,
    #[error("SIP message of at least {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed SIP start line: {reason}")]
    BadStartLine { reason: &'static str },
    #[error("Content-Length header is not a decimal byte count")]
    BadContentLength,
}

#[cfg(test)]
mod tests {
    //! Whole-corpus checks: every UDP payload of the real captures in tests/corpus is fed to the
    //! parser, and the Call-IDs found are compared with tshark's ground truth (truth.json).

    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

    // ---- minimal capture reading (classic pcap and pcapng) ----

    fn u16_at(b: &[u8], o: usize, be: bool) -> Option<u16> {
        let a: [u8; 2] = b.get(o..o + 2)?.try_into().ok()?;
        Some(if be {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    fn u32_at(b: &[u8], o: usize, be: bool) -> Option<u32> {
        let a: [u8; 4] = b.get(o..o + 4)?.try_into().ok()?;
        Some(if be {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    /// (link type, frame bytes) of every packet; unreadable files yield nothing.
    fn packets(file: &[u8]) -> Vec<(u32, &[u8])> {
        let mut out = Vec::new();
        match u32_at(file, 0, true) {
            Some(0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1) => {
                let be = matches!(u32_at(file, 0, true), Some(0xa1b2_c3d4 | 0xa1b2_3c4d));
                let Some(link) = u32_at(file, 20, be) else {
                    return out;
                };
                let mut o = 24;
                while let Some(incl) = u32_at(file, o + 8, be) {
                    let Some(data) = file.get(o + 16..o + 16 + incl as usize) else {
                        break;
                    };
                    out.push((link & 0xffff, data));
                    o += 16 + incl as usize;
                }
            }
            Some(0x0a0d_0d0a) => {
                let mut be = false;
                let mut links: Vec<u32> = Vec::new();
                let mut o = 0;
                loop {
                    if u32_at(file, o, true) == Some(0x0a0d_0d0a) {
                        be = u32_at(file, o + 8, true) == Some(0x1a2b_3c4d);
                        links.clear();
                    }
                    let (Some(kind), Some(len)) = (u32_at(file, o, be), u32_at(file, o + 4, be))
                    else {
                        break;
                    };
                    let len = len as usize;
                    if len < 12 || file.len() < o + len {
                        break;
                    }
                    let block = &file[o..o + len];
                    match kind {
                        1 => links.push(u16_at(block, 8, be).map_or(0, u32::from)),
                        6 => {
                            let iface = u32_at(block, 8, be).unwrap_or(u32::MAX) as usize;
                            let cap = u32_at(block, 20, be).unwrap_or(0) as usize;
                            if let (Some(&l), Some(d)) = (links.get(iface), block.get(28..28 + cap))
                            {
                                out.push((l, d));
                            }
                        }
                        3 => {
                            if let (Some(&l), Some(d)) = (links.first(), block.get(12..len - 4)) {
                                out.push((l, d));
                            }
                        }
                        _ => {}
                    }
                    o += len;
                }
            }
            _ => {}
        }
        out
    }

    /// UDP payloads inside a frame, with whether the path was plain Ethernet/IPv4/UDP.
    /// Besides that path: VLAN, PPPoE, SLL, null/raw links, IPv6 (with extension headers),
    /// IP-in-IP and GRE/ERSPAN, since truth.json's calls travel over all of them.
    fn udp_payloads(link: u32, frame: &[u8]) -> Vec<(&[u8], bool)> {
        let mut out = Vec::new();
        match link {
            1 => ethernet(frame, 0, &mut out),
            113 => {
                if let Some(p) = u16_at(frame, 14, true) {
                    ethertype(p, frame.get(16..).unwrap_or_default(), false, 0, &mut out);
                }
            }
            276 => {
                if let Some(p) = u16_at(frame, 0, true) {
                    ethertype(p, frame.get(20..).unwrap_or_default(), false, 0, &mut out);
                }
            }
            0 => ip(frame.get(4..).unwrap_or_default(), false, 0, &mut out),
            12 | 14 | 101 | 228 | 229 => ip(frame, false, 0, &mut out),
            _ => {}
        }
        out
    }

    fn ethernet<'f>(frame: &'f [u8], depth: u8, out: &mut Vec<(&'f [u8], bool)>) {
        if let Some(t) = u16_at(frame, 12, true) {
            ethertype(
                t,
                frame.get(14..).unwrap_or_default(),
                depth == 0,
                depth,
                out,
            );
        }
    }

    fn ethertype<'f>(t: u16, p: &'f [u8], plain: bool, depth: u8, out: &mut Vec<(&'f [u8], bool)>) {
        if depth > 4 {
            return;
        }
        match t {
            0x0800 | 0x86dd => ip(p, plain, depth, out),
            0x8100 | 0x88a8 | 0x9100 => {
                if let Some(inner) = u16_at(p, 2, true) {
                    ethertype(inner, p.get(4..).unwrap_or_default(), false, depth + 1, out);
                }
            }
            0x8864 => match u16_at(p, 6, true) {
                Some(0x0021) | Some(0x0057) => {
                    ip(p.get(8..).unwrap_or_default(), false, depth + 1, out)
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn ip<'f>(p: &'f [u8], plain: bool, depth: u8, out: &mut Vec<(&'f [u8], bool)>) {
        if depth > 4 {
            return;
        }
        let Some(&v) = p.first() else { return };
        let (proto, l4, v4) = match v >> 4 {
            4 => {
                let ihl = usize::from(v & 0x0f) * 4;
                let total = u16_at(p, 2, true)
                    .map_or(p.len(), usize::from)
                    .clamp(ihl, p.len());
                let frag_off = u16_at(p, 6, true).unwrap_or(0) & 0x1fff;
                if frag_off != 0 {
                    return;
                }
                let (Some(&proto), Some(l4)) = (p.get(9), p.get(ihl..total)) else {
                    return;
                };
                (proto, l4, true)
            }
            6 => {
                let Some(&first) = p.get(6) else { return };
                let mut next = first;
                let mut o = 40;
                loop {
                    match next {
                        0 | 43 | 60 => {
                            let (Some(&n), Some(&l)) = (p.get(o), p.get(o + 1)) else {
                                return;
                            };
                            next = n;
                            o += (usize::from(l) + 1) * 8;
                        }
                        44 => {
                            if u16_at(p, o + 2, true).unwrap_or(1) & 0xfff8 != 0 {
                                return;
                            }
                            let Some(&n) = p.get(o) else { return };
                            next = n;
                            o += 8;
                        }
                        _ => break,
                    }
                }
                let Some(l4) = p.get(o..) else { return };
                (next, l4, false)
            }
            _ => return,
        };
        match proto {
            17 => {
                let len = u16_at(l4, 4, true)
                    .map_or(0, usize::from)
                    .clamp(8, l4.len().max(8));
                if let Some(payload) = l4.get(8..len) {
                    out.push((payload, plain && v4));
                }
            }
            4 | 41 => ip(l4, false, depth + 1, out),
            47 => {
                let (Some(flags), Some(t)) = (u16_at(l4, 0, true), u16_at(l4, 2, true)) else {
                    return;
                };
                let hl = 4 + [0x8000u16, 0x2000, 0x1000]
                    .iter()
                    .filter(|&&b| flags & b != 0)
                    .count()
                    * 4;
                let inner = l4.get(hl..).unwrap_or_default();
                match t {
                    0x88be => ethernet(inner.get(8..).unwrap_or_default(), depth + 1, out),
                    0x22eb => ethernet(inner.get(12..).unwrap_or_default(), depth + 1, out),
                    0x6558 => ethernet(inner, depth + 1, out),
                    other => ethertype(other, inner, false, depth + 1, out),
                }
            }
            _ => {}
        }
    }

    // ---- minimal JSON reader for truth.json (no dev-dependency needed) ----

    #[derive(Debug)]
    enum Json {
        Null,
        Bool,
        Num,
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        fn get(&self, k: &str) -> Option<&Json> {
            match self {
                Json::Obj(v) => v.iter().find(|(n, _)| n == k).map(|(_, j)| j),
                _ => None,
            }
        }
        fn arr(&self) -> &[Json] {
            match self {
                Json::Arr(v) => v,
                _ => &[],
            }
        }
        fn str(&self) -> Option<&str> {
            match self {
                Json::Str(s) => Some(s),
                _ => None,
            }
        }
    }

    struct JsonReader<'j> {
        b: &'j [u8],
        i: usize,
    }

    impl JsonReader<'_> {
        fn ws(&mut self) {
            while self.b.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
                self.i += 1;
            }
        }
        fn value(&mut self) -> Json {
            self.ws();
            match self.b[self.i] {
                b'{' => {
                    self.i += 1;
                    let mut v = Vec::new();
                    loop {
                        self.ws();
                        if self.b[self.i] == b'}' {
                            self.i += 1;
                            return Json::Obj(v);
                        }
                        let k = self.string();
                        self.ws();
                        assert_eq!(self.b[self.i], b':');
                        self.i += 1;
                        v.push((k, self.value()));
                        self.ws();
                        if self.b[self.i] == b',' {
                            self.i += 1;
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut v = Vec::new();
                    loop {
                        self.ws();
                        if self.b[self.i] == b']' {
                            self.i += 1;
                            return Json::Arr(v);
                        }
                        v.push(self.value());
                        self.ws();
                        if self.b[self.i] == b',' {
                            self.i += 1;
                        }
                    }
                }
                b'"' => Json::Str(self.string()),
                b't' | b'f' | b'n' => {
                    let null = self.b[self.i] == b'n';
                    while self.b[self.i].is_ascii_alphabetic() {
                        self.i += 1;
                    }
                    if null { Json::Null } else { Json::Bool }
                }
                _ => {
                    while matches!(
                        self.b[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    ) {
                        self.i += 1;
                    }
                    Json::Num
                }
            }
        }
        fn hex4(&mut self) -> u32 {
            let h = std::str::from_utf8(&self.b[self.i..self.i + 4]).unwrap();
            self.i += 4;
            u32::from_str_radix(h, 16).unwrap()
        }
        fn string(&mut self) -> String {
            assert_eq!(self.b[self.i], b'"');
            self.i += 1;
            let mut s = Vec::new();
            loop {
                let c = self.b[self.i];
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(s).unwrap(),
                    b'\\' => {
                        let e = self.b[self.i];
                        self.i += 1;
                        let ch = match e {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'u' => {
                                let mut cp = self.hex4();
                                if (0xd800..0xdc00).contains(&cp)
                                    && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                                {
                                    self.i += 2;
                                    let lo = self.hex4();
                                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                }
                                char::from_u32(cp).unwrap_or('\u{fffd}')
                            }
                            other => other as char,
                        };
                        let mut buf = [0; 4];
                        s.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => s.push(c),
                }
            }
        }
    }

    fn corpus_files() -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(format!("{CORPUS}/pcaps"))
            .expect("corpus directory")
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// Exercises every accessor; returns nothing, the point is that none panics.
    fn touch_everything(m: &Message<'_>) {
        let _ = (
            m.method(),
            m.status(),
            m.is_request(),
            m.call_id(),
            m.cseq(),
            m.via_branch(),
        );
        for n in [m.from(), m.to(), m.contact(), m.refer_to(), m.referred_by()]
            .into_iter()
            .flatten()
        {
            touch_name_addr(&n);
        }
        if let Some(u) = m.request_uri() {
            let _ = (
                u.user_unescaped(),
                u.param("user"),
                u.header("Replaces"),
                u.replaces(),
            );
        }
        for n in m.p_asserted_identity().iter().chain(&m.diversion()) {
            touch_name_addr(n);
        }
        for h in m.history_info() {
            touch_name_addr(&h.addr);
        }
        let _ = (
            m.replaces(),
            m.content_type(),
            m.content_length(),
            m.body(),
            m.body_truncated(),
        );
        let _ = (
            m.header_by_name("x-foo"),
            m.multipart_part("application/rs-metadata+xml"),
        );
        for h in &m.headers {
            let _ = m.headers(h.name).count();
        }
        if let Some(s) = m.sdp() {
            for md in &s.media {
                let _ = (
                    md.effective_connection(&s),
                    md.effective_direction(&s),
                    md.is_hold_address(&s),
                );
                for &pt in &md.formats {
                    let _ = (md.codec_for(pt), md.fmtp_for(pt));
                }
            }
        }
    }

    fn touch_name_addr(n: &NameAddr<'_>) {
        let _ = (
            n.tag(),
            n.param("reason"),
            n.display_unescaped(),
            n.uri.user_unescaped(),
        );
        let _ = (
            n.uri.param("transport"),
            n.uri.header("Replaces"),
            n.uri.replaces(),
            n.uri.is_sip(),
        );
    }

    #[test]
    fn corpus_udp_payloads_parse_and_cover_truth_call_ids() {
        let truth_bytes = std::fs::read(format!("{CORPUS}/truth.json")).expect("truth.json");
        let truth = JsonReader {
            b: &truth_bytes,
            i: 0,
        }
        .value();
        // file → [(Call-ID, SDP endpoints "addr:port")]
        let mut expected: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
        for f in truth.get("files").unwrap().arr() {
            let links: Vec<_> = f
                .get("link_types")
                .unwrap()
                .arr()
                .iter()
                .filter_map(Json::str)
                .collect();
            if links != ["eth"] {
                continue;
            }
            let name = f.get("file").and_then(Json::str).unwrap().to_owned();
            for c in f.get("calls").unwrap().arr() {
                let udp_only = c
                    .get("transports")
                    .unwrap()
                    .arr()
                    .iter()
                    .filter_map(Json::str)
                    .eq(["udp"]);
                if let (true, Some(id)) = (udp_only, c.get("call_id").and_then(Json::str)) {
                    let eps = c.get("sdp_endpoints").map_or(&[][..], Json::arr);
                    let eps = eps
                        .iter()
                        .filter_map(Json::str)
                        .map(str::to_owned)
                        .collect();
                    expected
                        .entry(name.clone())
                        .or_default()
                        .push((id.to_owned(), eps));
                }
            }
        }

        let (mut payloads, mut sip_like, mut parsed) = (0usize, 0usize, 0usize);
        let (mut matched, mut matched_plain, mut total) = (0usize, 0usize, 0usize);
        let mut missing = Vec::new();
        let (mut sdp_agree, mut sdp_superset, mut sdp_differ) = (0usize, Vec::new(), Vec::new());
        for (name, bytes) in corpus_files() {
            let mut ids: BTreeSet<String> = BTreeSet::new();
            let mut plain_ids: BTreeSet<String> = BTreeSet::new();
            let mut endpoints: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (link, frame) in packets(&bytes) {
                for (payload, plain) in udp_payloads(link, frame) {
                    payloads += 1;
                    let looks = looks_like_sip(payload);
                    let result = parse(payload);
                    if looks {
                        sip_like += 1;
                        assert!(
                            result.is_ok(),
                            "{name}: SIP-looking payload failed: {result:?}"
                        );
                    }
                    if let Ok(m) = result {
                        parsed += 1;
                        touch_everything(&m);
                        // tshark stores header text as C strings, so its Call-ID stops at a NUL.
                        if let Some(id) = m.call_id().and_then(|id| id.split('\0').next()) {
                            ids.insert(id.to_owned());
                            if let Some(sdp) = m.sdp() {
                                let set = endpoints.entry(id.to_owned()).or_default();
                                for md in &sdp.media {
                                    if let Some(a) = md.effective_connection(&sdp) {
                                        set.insert(
                                            std::net::SocketAddr::new(a, md.port).to_string(),
                                        );
                                    }
                                }
                            }
                            if plain {
                                plain_ids.insert(id.to_owned());
                            }
                        }
                    }
                }
            }
            for (id, truth_eps) in expected.get(&name).into_iter().flatten() {
                total += 1;
                let ours = endpoints.get(id).cloned().unwrap_or_default();
                // truth.json writes IPv6 endpoints unbracketed ("fe80:0:0:0:1:5008").
                let theirs: BTreeSet<String> = truth_eps
                    .iter()
                    .filter_map(|e| {
                        let (a, p) = e.rsplit_once(':')?;
                        Some(
                            std::net::SocketAddr::new(a.parse().ok()?, p.parse().ok()?).to_string(),
                        )
                    })
                    .collect();
                if ours == theirs {
                    sdp_agree += 1;
                } else if theirs.is_subset(&ours) {
                    sdp_superset.push(format!("{name}: {id:?}: ours {ours:?} truth {theirs:?}"));
                } else {
                    sdp_differ.push(format!("{name}: {id:?}: ours {ours:?} truth {theirs:?}"));
                }
                if ids.contains(id) {
                    matched += 1;
                } else {
                    missing.push(format!("{name}: {id:?}"));
                }
                matched_plain += usize::from(plain_ids.contains(id));
            }
        }
        eprintln!(
            "corpus: {payloads} UDP payloads, {sip_like} look like SIP, {parsed} parsed; \
             truth Call-IDs matched {matched}/{total} ({matched_plain} over plain Ethernet/IPv4/UDP)"
        );
        eprintln!(
            "SDP endpoints equal tshark's for {sdp_agree}/{total} calls, a superset for {}:",
            sdp_superset.len()
        );
        for d in &sdp_superset {
            eprintln!("  {d}");
        }
        assert!(
            sdp_differ.is_empty(),
            "SDP endpoints tshark saw but we did not:\n{}",
            sdp_differ.join("\n")
        );
        assert!(sip_like > 400, "too few SIP payloads found: {sip_like}");
        assert!(
            missing.is_empty(),
            "truth Call-IDs not found:\n{}",
            missing.join("\n")
        );
    }
    /// Every UDP payload of one corpus file that parses as SIP.
    fn corpus_sip_payloads(file: &str) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(format!("{CORPUS}/pcaps/{file}")).expect("corpus file");
        let mut out = Vec::new();
        for (link, frame) in packets(&bytes) {
            for (payload, _) in udp_payloads(link, frame) {
                if parse(payload).is_ok() {
                    out.push(payload.to_vec());
                }
            }
        }
        out
    }

    #[test]
    fn corpus_attended_transfer_and_hold() {
        // A real attended transfer seen through ERSPAN: REFERs whose Refer-To embeds Replaces.
        let msgs = corpus_sip_payloads("heplify__example_pcap_erspan_sip_ipv4_udp.pcapng");
        let mut replaced = BTreeSet::new();
        let mut held_calls = BTreeSet::new();
        for raw in &msgs {
            let m = parse(raw).unwrap();
            if m.method() == Some(&Method::Refer) {
                let r = m
                    .refer_to()
                    .and_then(|n| n.uri.replaces())
                    .expect("Replaces in Refer-To");
                assert!(!r.to_tag.is_empty() && !r.from_tag.is_empty());
                replaced.insert((r.call_id, r.to_tag, r.from_tag));
                assert!(m.referred_by().is_some() || m.header(HeaderName::ReferredBy).is_none());
            }
            if let Some(sdp) = m.sdp() {
                let held = sdp.media.iter().any(|md| {
                    md.is_hold_address(&sdp)
                        || matches!(
                            md.effective_direction(&sdp),
                            Direction::SendOnly | Direction::Inactive
                        )
                });
                if held {
                    held_calls.insert(m.call_id().unwrap().to_owned());
                }
            }
        }
        let ids: BTreeSet<&str> = replaced.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            ids,
            BTreeSet::from([
                "20797C32-5AF5017B00043F0C-FA7FD700",
                "bf3880-0-16e4-5af571fa-38bc4ba4-5af571fa@101.231.48.19",
            ])
        );
        assert!(replaced.contains(&(
            "20797C32-5AF5017B00043F0C-FA7FD700".to_owned(),
            "779c4b34bb083eb9b1623e76e439bfd4".to_owned(),
            "0629F602-5AF5017B00043F06-FA7FD700".to_owned(),
        )));
        // truth.json marks three calls of this file as put on hold.
        assert_eq!(held_calls.len(), 3, "{held_calls:?}");
    }

    /// Deterministic xorshift64*: the robustness test must fail the same way on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn mutated_corpus_messages_never_panic() {
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        for (name, _) in corpus_files() {
            seeds.extend(corpus_sip_payloads(&name));
        }
        assert!(seeds.len() > 400);
        // Bytes that steer the parser into its interesting branches.
        const SPICE: &[u8] = b",;:\"<>\\%@[]?&= \t\r\n\0\xff0123456789";
        let seed = std::env::var("SIP_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x5eed_cafe_f00d_d00d);
        let mut rng = Rng(seed.max(1));
        let mut accepted = 0usize;
        // SIP_FUZZ_ITERS raises the count for a longer local soak.
        let iterations: usize = std::env::var("SIP_FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        for _ in 0..iterations {
            let mut m = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(m.len() + 1);
                match rng.below(6) {
                    0 if !m.is_empty() => {
                        let i = at.min(m.len() - 1);
                        m[i] ^= 1 << rng.below(8);
                    }
                    1 => m.truncate(at),
                    2 => m.insert(at, SPICE[rng.below(SPICE.len())]),
                    3 => m.insert(at, rng.next() as u8),
                    4 if at < m.len() => {
                        let end = (at + 1 + rng.below(64)).min(m.len());
                        let chunk = m[at..end].to_vec();
                        let to = rng.below(m.len() + 1);
                        m.splice(to..to, chunk);
                    }
                    _ if at < m.len() => {
                        let end = (at + 1 + rng.below(16)).min(m.len());
                        m.drain(at..end);
                    }
                    _ => {}
                }
            }
            let _ = looks_like_sip(&m);
            if let Ok(msg) = parse(&m) {
                accepted += 1;
                touch_everything(&msg);
            }
            let _ = parse_sdp(&m);
        }
        eprintln!("robustness: {iterations} mutated messages, {accepted} still parsed, no panic");
        assert!(accepted > 1000);
    }

    /// `cargo test --release -- --ignored throughput --nocapture`: parse speed on the corpus.
    #[test]
    #[ignore]
    fn throughput() {
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        for (name, _) in corpus_files() {
            seeds.extend(corpus_sip_payloads(&name));
        }
        let bytes: usize = seeds.iter().map(Vec::len).sum();
        let rounds = 200;
        let t = std::time::Instant::now();
        let mut found = 0usize;
        for _ in 0..rounds {
            for s in &seeds {
                let m = parse(std::hint::black_box(s)).unwrap();
                found +=
                    usize::from(m.call_id().is_some() && m.cseq().is_some() && m.from().is_some());
            }
        }
        let per = t.elapsed() / (rounds * seeds.len()) as u32;
        let t = std::time::Instant::now();
        let mut media = 0usize;
        for _ in 0..rounds {
            for s in &seeds {
                media += parse(s).unwrap().sdp().map_or(0, |d| d.media.len());
            }
        }
        let per_sdp = t.elapsed() / (rounds * seeds.len()) as u32;
        eprintln!(
            "{} messages ({} B avg): parse+call_id+cseq+from {per:?}/msg, parse+sdp {per_sdp:?}/msg ({found} {media})",
            seeds.len(),
            bytes / seeds.len()
        );
    }
}
