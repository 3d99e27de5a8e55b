//! One SIP message as a borrowed view: start line, header table, Content-Length-bounded body,
//! and the typed accessors the call tracker needs (dialog identifiers, transfer and diversion
//! headers, the SDP offer/answer, SIPREC multipart bodies). Framing messages out of a TCP byte
//! stream is the net stage's (`net::tcp`).
//!
//! Receives the bytes of one UDP payload or one framed TCP message; emits [`Message`] or a
//! [`SipError`] saying why the bytes are not SIP. One bad header never fails the message: it is
//! counted in [`Message::malformed_headers`] and skipped. Never panics, never reads past the
//! buffer, never keeps more than [`MAX_HEADERS`] headers, and allocates only the header table
//! (plus an owned string for a folded or non-UTF-8 header value).

use std::borrow::Cow;

use memchr::{memchr, memchr2, memmem, memrchr};

use super::SipError;
use super::header::{CommaSplit, Header, HeaderName, find_param, unquote};
use super::sdp::{Sdp, parse_sdp};
use super::uri::{NameAddr, Replaces, Uri};

/// Largest message accepted (a UDP datagram cannot be bigger; a TCP message claiming more is
/// hostile or broken).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Header lines kept per message; more are counted in [`Message::dropped_headers`].
pub const MAX_HEADERS: usize = 200;
/// A start line longer than this is not waited for on TCP.
pub const MAX_START_LINE: usize = 8 * 1024;
/// Entries returned by the list accessors (PAI, Diversion, History-Info).
pub const MAX_LISTED: usize = 32;
/// Parts of a multipart body examined.
const MAX_PARTS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Prack,
    Update,
    Refer,
    Notify,
    Subscribe,
    Info,
    Message,
    Publish,
    Other(&'a str),
}

impl std::fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const METHODS: &[(&str, Method<'static>)] = &[
    ("INVITE", Method::Invite),
    ("ACK", Method::Ack),
    ("BYE", Method::Bye),
    ("CANCEL", Method::Cancel),
    ("OPTIONS", Method::Options),
    ("REGISTER", Method::Register),
    ("PRACK", Method::Prack),
    ("UPDATE", Method::Update),
    ("REFER", Method::Refer),
    ("NOTIFY", Method::Notify),
    ("SUBSCRIBE", Method::Subscribe),
    ("INFO", Method::Info),
    ("MESSAGE", Method::Message),
    ("PUBLISH", Method::Publish),
];

impl<'a> Method<'a> {
    /// Methods are case-sensitive in RFC 3261, but some endpoints send `invite`; map those too.
    pub fn from_token(token: &'a str) -> Method<'a> {
        METHODS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(token))
            .map_or(Method::Other(token), |&(_, m)| m)
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Other(s) => s,
            known => METHODS
                .iter()
                .find(|(_, m)| m == known)
                .map_or("", |(n, _)| n),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request { method: Method<'a>, uri: &'a str },
    Response { status: u16, reason: &'a str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method<'a>,
}

/// One History-Info entry (RFC 7044); the target URI may carry `?Reason=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry<'a> {
    pub addr: NameAddr<'a>,
    pub index: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub start: StartLine<'a>,
    pub headers: Vec<Header<'a>>,
    body: &'a [u8],
    body_truncated: bool,
    malformed_headers: u16,
    dropped_headers: u16,
}

const fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// Keep-alives (CRLF, RFC 5626) and stray NULs some stacks put before a message.
const fn is_leading_junk(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0)
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !is_ws(*first) {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !is_ws(*last) {
            break;
        }
        b = rest;
    }
    b
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The longest valid UTF-8 prefix: the start line's text is used as `&str`, and a stray byte
/// in a Request-URI or reason phrase should shorten it, not reject the message.
fn utf8_prefix(b: &[u8]) -> &str {
    match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) => b
            .get(..e.valid_up_to())
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or(""),
    }
}

fn cow_str(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// RFC 3261 token characters (method names, header names).
fn is_token(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// `SIP/<digits>.<digits>`, case-insensitively.
fn is_sip_version(v: &[u8]) -> bool {
    let Some(rest) = v.get(4..) else { return false };
    if !v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/")) {
        return false;
    }
    let mut parts = rest.split(|&b| b == b'.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    parts.next().is_none()
        && !major.is_empty()
        && !minor.is_empty()
        && major.iter().chain(minor).all(u8::is_ascii_digit)
}

/// Classifies a complete start line (no line ending).
fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, SipError> {
    let line = trim(line);
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        let sp = memchr(b' ', line).unwrap_or(line.len());
        if !is_sip_version(line.get(..sp).unwrap_or_default()) {
            return Err(SipError::NotSip);
        }
        let rest = trim(line.get(sp..).unwrap_or_default());
        let code = rest.get(..3).ok_or(SipError::BadStartLine {
            reason: "status code is not three digits",
        })?;
        let after = rest.get(3..).unwrap_or_default();
        if !code.iter().all(u8::is_ascii_digit) || after.first().is_some_and(|&b| !is_ws(b)) {
            return Err(SipError::BadStartLine {
                reason: "status code is not three digits",
            });
        }
        let status = code
            .iter()
            .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&status) {
            return Err(SipError::BadStartLine {
                reason: "status code outside 100-699",
            });
        }
        return Ok(StartLine::Response {
            status,
            reason: utf8_prefix(trim(after)),
        });
    }
    let sp1 = memchr(b' ', line).ok_or(SipError::NotSip)?;
    let sp2 = memrchr(b' ', line).ok_or(SipError::NotSip)?;
    let method = line.get(..sp1).unwrap_or_default();
    if sp2 == sp1 || !is_token(method) || !is_sip_version(line.get(sp2 + 1..).unwrap_or_default()) {
        return Err(SipError::NotSip);
    }
    let uri = trim(line.get(sp1 + 1..sp2).unwrap_or_default());
    if uri.is_empty() {
        return Err(SipError::BadStartLine {
            reason: "empty Request-URI",
        });
    }
    Ok(StartLine::Request {
        method: Method::from_token(utf8_prefix(method)),
        uri: utf8_prefix(uri),
    })
}

/// Could `p` (a start line without its line ending yet) become a SIP start line?
fn plausible_start_prefix(p: &[u8]) -> bool {
    const VERSION: &[u8] = b"SIP/";
    let n = p.len().min(VERSION.len());
    if p.get(..n)
        .is_some_and(|a| VERSION.get(..n).is_some_and(|v| a.eq_ignore_ascii_case(v)))
    {
        return true;
    }
    let Some(sp1) = memchr(b' ', p) else {
        return is_token(p) && p.len() <= 32;
    };
    if !is_token(p.get(..sp1).unwrap_or_default()) {
        return false;
    }
    let Some(sp2) = memrchr(b' ', p).filter(|&s| s > sp1) else {
        return true;
    };
    let tail = p.get(sp2 + 1..).unwrap_or_default();
    let k = tail.len().min(VERSION.len());
    tail.get(..k)
        .is_some_and(|a| VERSION.get(..k).is_some_and(|v| a.eq_ignore_ascii_case(v)))
        && tail
            .get(4..)
            .unwrap_or_default()
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b'.')
}

/// Bytes of CRLF keep-alives (and other leading whitespace/NULs) at the front of `buf`. A TCP
/// reader should discard them so an idle connection's pings do not accumulate.
pub fn leading_keepalive_len(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| !is_leading_junk(b))
        .unwrap_or(buf.len())
}

/// First line after leading junk: (offset of line start, line without its ending, offset of the
/// next line or `None` if the line has no ending yet). A lone CR also ends the start line, as
/// it does for tshark: a corrupted `SIP/2.0\rVia: ...` must not hide the whole message.
fn first_line(buf: &[u8]) -> (usize, &[u8], Option<usize>) {
    let start = leading_keepalive_len(buf);
    let rest = buf.get(start..).unwrap_or_default();
    match memchr2(b'\r', b'\n', rest) {
        Some(end) => {
            let skip = if rest.get(end..end + 2) == Some(b"\r\n".as_slice()) {
                2
            } else {
                1
            };
            (
                start,
                rest.get(..end).unwrap_or_default(),
                Some(start + end + skip),
            )
        }
        None => (start, rest, None),
    }
}

/// Cheap check that the first line is a SIP request or status line.
pub fn looks_like_sip(buf: &[u8]) -> bool {
    let (_, line, _) = first_line(buf.get(..MAX_START_LINE.min(buf.len())).unwrap_or_default());
    parse_start_line(line).is_ok()
}

/// Decimal Content-Length; `None` for anything else (sign, junk, overflow).
fn parse_content_length(v: &[u8]) -> Option<usize> {
    let v = trim(v);
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

/// Parses one SIP message. Leading keep-alives are skipped; the body is bounded by
/// Content-Length when it is valid, otherwise it is the rest of the buffer (UDP).
pub fn parse(buf: &[u8]) -> Result<Message<'_>, SipError> {
    if buf.len() > MAX_MESSAGE_LEN {
        return Err(SipError::TooLarge {
            len: buf.len(),
            limit: MAX_MESSAGE_LEN,
        });
    }
    let (start, line, after_line) = first_line(buf);
    if start == buf.len() {
        return Err(SipError::NotSip);
    }
    let start_line = match parse_start_line(line) {
        Ok(s) => s,
        Err(SipError::NotSip) if after_line.is_none() && plausible_start_prefix(line) => {
            return Err(SipError::Truncated);
        }
        Err(e) => return Err(e),
    };
    let mut msg = Message {
        start: start_line,
        headers: Vec::with_capacity(16),
        body: &[],
        body_truncated: false,
        malformed_headers: 0,
        dropped_headers: 0,
    };
    let mut pos = after_line.unwrap_or(buf.len());
    // (start, end, folded) of the header being collected; continuation lines extend `end`.
    let mut pending: Option<(usize, usize, bool)> = None;
    let mut body_start = None;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let (line_end, next) = match memchr(b'\n', rest) {
            Some(o) => (pos + o, pos + o + 1),
            None => (buf.len(), buf.len()),
        };
        let line = strip_cr(buf.get(pos..line_end).unwrap_or_default());
        let content_end = pos + line.len();
        match line.first() {
            None => {
                body_start = Some(next);
                break;
            }
            Some(b' ' | b'\t') => match pending.as_mut() {
                Some(p) => {
                    p.1 = content_end;
                    p.2 = true;
                }
                None => msg.malformed_headers = msg.malformed_headers.saturating_add(1),
            },
            Some(_) => {
                if let Some(p) = pending.replace((pos, content_end, false)) {
                    msg.push_header(buf, p);
                }
            }
        }
        pos = next;
    }
    if let Some(p) = pending {
        msg.push_header(buf, p);
    }
    let body_start = body_start.unwrap_or(buf.len());
    let available = buf.get(body_start..).unwrap_or_default();
    match msg.content_length() {
        Ok(Some(cl)) if cl <= available.len() => msg.body = available.get(..cl).unwrap_or_default(),
        Ok(Some(_)) => {
            msg.body = available;
            msg.body_truncated = true;
        }
        _ => msg.body = available,
    }
    Ok(msg)
}

impl<'a> Message<'a> {
    fn push_header(&mut self, buf: &'a [u8], (start, end, folded): (usize, usize, bool)) {
        let raw = buf.get(start..end).unwrap_or_default();
        let Some(colon) = memchr(b':', raw) else {
            self.malformed_headers = self.malformed_headers.saturating_add(1);
            return;
        };
        let name = trim(raw.get(..colon).unwrap_or_default());
        if !name.iter().all(|&b| b.is_ascii_graphic()) || name.is_empty() {
            self.malformed_headers = self.malformed_headers.saturating_add(1);
            return;
        }
        if self.headers.len() >= MAX_HEADERS {
            self.dropped_headers = self.dropped_headers.saturating_add(1);
            return;
        }
        let value_bytes = raw.get(colon + 1..).unwrap_or_default();
        let value = if folded {
            unfold(value_bytes)
        } else {
            cow_str(trim(value_bytes))
        };
        let raw_name = utf8_prefix(name);
        self.headers.push(Header {
            name: HeaderName::from_wire(raw_name),
            raw_name,
            value,
        });
    }

    pub fn method(&self) -> Option<&Method<'a>> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn request_uri(&self) -> Option<Uri<'_>> {
        match self.start {
            StartLine::Request { uri, .. } => Uri::parse(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// First value of a header (for multi-valued headers: the first comma-separated element).
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers(name).next()
    }

    /// Every value of a header, in order; multi-valued headers are comma-split.
    pub fn headers(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        let split = name.is_multi_valued();
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .flat_map(move |h| CommaSplit::new(&h.value, split))
    }

    /// First value of a header by wire name (any case, compact forms resolved), including
    /// headers this parser does not know.
    pub fn header_by_name(&self, name: &str) -> Option<&str> {
        match HeaderName::from_wire(name) {
            HeaderName::Other => self
                .headers
                .iter()
                .find(|h| {
                    h.name == HeaderName::Other && h.raw_name.eq_ignore_ascii_case(name.trim())
                })
                .map(|h| h.value.trim()),
            known => self.header(known),
        }
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header(HeaderName::CallId)
    }

    pub fn from(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header(HeaderName::From)?)
    }

    pub fn to(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header(HeaderName::To)?)
    }

    pub fn cseq(&self) -> Option<CSeq<'_>> {
        let mut f = self.header(HeaderName::CSeq)?.split_ascii_whitespace();
        let seq = f.next()?.parse().ok()?;
        Some(CSeq {
            seq,
            method: Method::from_token(f.next()?),
        })
    }

    /// `branch` parameter of the top Via.
    pub fn via_branch(&self) -> Option<&str> {
        let via = self.header(HeaderName::Via)?;
        let (_, params) = via.split_once(';')?;
        find_param(params, "branch").filter(|b| !b.is_empty())
    }

    pub fn contact(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header(HeaderName::Contact)?)
    }

    fn name_addrs(&self, name: HeaderName) -> Vec<NameAddr<'_>> {
        self.headers(name)
            .filter_map(NameAddr::parse)
            .take(MAX_LISTED)
            .collect()
    }

    pub fn p_asserted_identity(&self) -> Vec<NameAddr<'_>> {
        self.name_addrs(HeaderName::PAssertedIdentity)
    }

    /// Diversion entries in header order (most recent diversion first, RFC 5806).
    pub fn diversion(&self) -> Vec<NameAddr<'_>> {
        self.name_addrs(HeaderName::Diversion)
    }

    pub fn history_info(&self) -> Vec<HistoryEntry<'_>> {
        self.headers(HeaderName::HistoryInfo)
            .filter_map(NameAddr::parse)
            .take(MAX_LISTED)
            .map(|addr| HistoryEntry {
                index: addr.param("index"),
                addr,
            })
            .collect()
    }

    pub fn refer_to(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header(HeaderName::ReferTo)?)
    }

    pub fn referred_by(&self) -> Option<NameAddr<'_>> {
        NameAddr::parse(self.header(HeaderName::ReferredBy)?)
    }

    /// The dialog named by a `Replaces` header (INVITE of an attended transfer or pickup).
    pub fn replaces(&self) -> Option<Replaces> {
        Replaces::parse(self.header(HeaderName::Replaces)?)
    }

    /// Media type of the body without parameters, e.g. `application/sdp`.
    pub fn content_type(&self) -> Option<&str> {
        let v = self.header(HeaderName::ContentType)?;
        let t = v.split(';').next().unwrap_or("").trim();
        (!t.is_empty()).then_some(t)
    }

    pub fn content_type_is(&self, media_type: &str) -> bool {
        self.content_type()
            .is_some_and(|t| t.eq_ignore_ascii_case(media_type))
    }

    /// `Ok(None)` without a Content-Length header, `Err(BadContentLength)` when the first one is
    /// not a byte count.
    pub fn content_length(&self) -> Result<Option<usize>, SipError> {
        match self.header(HeaderName::ContentLength) {
            None => Ok(None),
            Some(v) => parse_content_length(v.as_bytes())
                .map(Some)
                .ok_or(SipError::BadContentLength),
        }
    }

    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The message as text, for the call page's ladder: start line, headers as sent (names
    /// as written, values unfolded) and the body when it is SDP or a sipfrag (bytes that are
    /// not UTF-8 shown as U+FFFD); at most `limit` bytes, cut at a character with a note of
    /// how long it was. Any other body is named, not kept: a SIP INFO keypress
    /// (`application/dtmf-relay`, `application/dtmf`) may be a card number, and must never be
    /// stored. SDES and MIKEY key lines of an SDP keep their name only.
    pub fn text(&self, limit: usize) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = match &self.start {
            StartLine::Request { method, uri } => {
                write!(out, "{} {uri} SIP/2.0\r\n", method.as_str())
            }
            StartLine::Response { status, reason } => write!(out, "SIP/2.0 {status} {reason}\r\n"),
        };
        for h in &self.headers {
            let _ = write!(out, "{}: {}\r\n", h.raw_name, h.value);
        }
        out.push_str("\r\n");
        let body = String::from_utf8_lossy(self.body);
        if self.content_type_is("application/sdp") {
            for line in body.split_inclusive('\n') {
                let key = ["a=crypto:", "a=key-mgmt:", "k="].into_iter().find(|k| {
                    line.as_bytes()
                        .get(..k.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(k.as_bytes()))
                });
                match key {
                    Some(k) => {
                        let _ = write!(out, "{k}[key not kept]\r\n");
                    }
                    None => out.push_str(line),
                }
            }
        } else if self.content_type_is("message/sipfrag") {
            out.push_str(&body);
        } else if !self.body.is_empty() {
            let _ = write!(
                out,
                "[{} bytes of {} not kept]",
                self.body.len(),
                self.content_type().unwrap_or("body")
            );
        }
        if out.len() > limit {
            let whole = out.len();
            let mut cut = limit;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            let _ = write!(out, "\r\n[… {} of {whole} bytes kept]", cut);
        }
        out
    }

    /// Content-Length promised more bytes than the buffer held.
    pub fn body_truncated(&self) -> bool {
        self.body_truncated
    }

    /// Header lines that were skipped (no colon, bad name, continuation with nothing to continue).
    pub fn malformed_headers(&self) -> u16 {
        self.malformed_headers
    }

    /// Header lines beyond [`MAX_HEADERS`], not kept.
    pub fn dropped_headers(&self) -> u16 {
        self.dropped_headers
    }

    /// The body of the first part of a `multipart/*` body with the given media type
    /// (e.g. `application/rs-metadata+xml` in SIPREC).
    pub fn multipart_part(&self, media_type: &str) -> Option<&'a [u8]> {
        let ct = self.header(HeaderName::ContentType)?;
        let (mt, params) = ct.split_once(';')?;
        if !mt
            .trim()
            .get(..10)
            .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"))
        {
            return None;
        }
        let boundary = unquote(find_param(params, "boundary")?);
        multipart_find(self.body, boundary.as_bytes(), media_type)
    }

    /// The session description: an `application/sdp` body, the SDP part of a multipart body
    /// (SIPREC), or an untyped body that starts like SDP.
    pub fn sdp(&self) -> Option<Sdp> {
        if self.body.is_empty() {
            return None;
        }
        match self.content_type() {
            Some(t) if t.eq_ignore_ascii_case("application/sdp") => Some(parse_sdp(self.body)),
            Some(t)
                if t.get(..10)
                    .is_some_and(|p| p.eq_ignore_ascii_case("multipart/")) =>
            {
                self.multipart_part("application/sdp").map(parse_sdp)
            }
            None if self.body.starts_with(b"v=") => Some(parse_sdp(self.body)),
            _ => None,
        }
    }
}

/// Joins a folded value's lines with single spaces (RFC 3261 7.3.1: LWS is equivalent to SP).
fn unfold(v: &[u8]) -> Cow<'_, str> {
    let mut out = String::with_capacity(v.len());
    for seg in v.split(|&b| b == b'\n') {
        let seg = trim(strip_cr(seg));
        if seg.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&String::from_utf8_lossy(seg));
    }
    Cow::Owned(out)
}

/// Walks `--boundary` delimiters (RFC 2046) and returns the content of the first part whose
/// Content-Type matches `media_type`.
fn multipart_find<'b>(body: &'b [u8], boundary: &[u8], media_type: &str) -> Option<&'b [u8]> {
    if boundary.is_empty() {
        return None;
    }
    // Delimiter positions: `--boundary` at the start of a line.
    let mut delims = memmem::find_iter(body, boundary).filter_map(|p| {
        let dash = p.checked_sub(2)?;
        let at_line_start = dash == 0 || body.get(dash - 1) == Some(&b'\n');
        (body.get(dash..p) == Some(b"--".as_slice()) && at_line_start)
            .then_some((dash, p + boundary.len()))
    });
    let (_, mut after) = delims.next()?;
    for _ in 0..MAX_PARTS {
        // `--boundary--` closes the body.
        if body.get(after..after + 2) == Some(b"--".as_slice()) {
            return None;
        }
        let part_start = after + memchr(b'\n', body.get(after..)?)? + 1;
        let (next_dash, next_after) = delims.next().unwrap_or((body.len(), body.len()));
        let mut part = body.get(part_start..next_dash.max(part_start))?;
        // The CRLF before a delimiter belongs to the delimiter.
        if next_dash < body.len() {
            part = part.strip_suffix(b"\n").unwrap_or(part);
            part = part.strip_suffix(b"\r").unwrap_or(part);
        }
        if let Some(content) = part_with_type(part, media_type) {
            return Some(content);
        }
        if next_dash >= body.len() {
            return None;
        }
        after = next_after;
    }
    None
}

/// If the MIME part's Content-Type is `media_type`, its content after the blank line.
fn part_with_type<'b>(part: &'b [u8], media_type: &str) -> Option<&'b [u8]> {
    let mut pos = 0;
    let mut matches = false;
    while let Some(rest) = part.get(pos..) {
        let (line, next) = match memchr(b'\n', rest) {
            Some(o) => (strip_cr(rest.get(..o)?), pos + o + 1),
            None => (strip_cr(rest), part.len()),
        };
        if line.is_empty() {
            return matches.then(|| part.get(next..).unwrap_or_default());
        }
        if let Some(colon) = memchr(b':', line) {
            let name = utf8_prefix(trim(line.get(..colon)?));
            if HeaderName::from_wire(name) == HeaderName::ContentType {
                let v = utf8_prefix(line.get(colon + 1..)?);
                let mt = v.split(';').next().unwrap_or("").trim();
                matches = mt.eq_ignore_ascii_case(media_type);
            }
        }
        if next >= part.len() {
            return None;
        }
        pos = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::sdp::Direction;
    use super::*;

    #[test]
    fn the_text_kept_of_a_message_never_holds_a_keypress_or_a_media_key() {
        let info = b"INFO sip:4711@10.0.0.5 SIP/2.0\r\nCall-ID: c1\r\nCSeq: 5 INFO\r\nContent-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=4\r\nDuration=160\r\n";
        let t = parse(info).unwrap().text(4096);
        assert!(t.starts_with("INFO sip:4711@10.0.0.5 SIP/2.0\r\n"), "{t}");
        assert!(!t.contains("Signal=4"), "{t}");
        assert!(
            t.contains("[24 bytes of application/dtmf-relay not kept]"),
            "{t}"
        );
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        let invite = format!(
            "INVITE sip:a@b SIP/2.0\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let t = parse(invite.as_bytes()).unwrap().text(4096);
        assert!(
            t.contains("m=audio 4000 RTP/SAVP 0") && t.contains("a=crypto:[key not kept]"),
            "{t}"
        );
        assert!(!t.contains("inline:"), "{t}");
        // cut at a character, saying so
        let t = parse(invite.as_bytes()).unwrap().text(40);
        assert!(
            t.starts_with("INVITE sip:a@b SIP/2.0")
                && t.contains("of ")
                && t.contains("bytes kept]"),
            "{t}"
        );
    }

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    #[test]
    fn compact_invite_with_folding_and_two_vias() {
        let body = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
        let head = crlf(
            "\n\nINVITE sip:bob@biloxi.example.com SIP/2.0\n\
v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds , SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKold\n\
f: \"Alice \\\"A\\\" Liddell\" <sip:alice@atlanta.example.com>;TAG=1928301774\n\
t: Bob <sip:bob@biloxi.example.com>\n\
i: a84b4c76e66710@pc33.atlanta.example.com\n\
CSeq: 314159 INVITE\n\
m: <sip:alice@pc33.atlanta.example.com>\n\
s: a subject\n   folded over\n\tthree lines\n\
k: replaces, timer\n\
c: application/sdp\n\
l: 54\n\
\n",
        );
        let raw = [head.as_slice(), body.as_bytes(), b"trailing junk"].concat();
        let m = parse(&raw).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.request_uri().unwrap().user, Some("bob"));
        assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33.atlanta.example.com"));
        let from = m.from().unwrap();
        assert_eq!(
            from.display_unescaped().as_deref(),
            Some("Alice \"A\" Liddell")
        );
        assert_eq!(from.tag(), Some("1928301774"));
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(
            m.cseq(),
            Some(CSeq {
                seq: 314159,
                method: Method::Invite
            })
        );
        assert_eq!(m.via_branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.headers(HeaderName::Via).count(), 2);
        assert_eq!(m.contact().unwrap().uri.host, "pc33.atlanta.example.com");
        assert_eq!(
            m.header(HeaderName::Subject),
            Some("a subject folded over three lines")
        );
        assert!(matches!(
            m.headers
                .iter()
                .find(|h| h.name == HeaderName::CallId)
                .unwrap()
                .value,
            Cow::Borrowed(_)
        ));
        assert_eq!(
            m.headers(HeaderName::Supported).collect::<Vec<_>>(),
            vec!["replaces", "timer"]
        );
        assert_eq!(m.content_type(), Some("application/sdp"));
        assert_eq!(m.body(), body.as_bytes());
        assert!(!m.body_truncated());
        assert_eq!(m.sdp().unwrap().media[0].port, 4000);
        assert_eq!(m.malformed_headers(), 0);
    }

    #[test]
    fn lf_only_response_with_junk_headers() {
        let raw = b"SIP/2.0 180 Ringing\nno colon here\n: empty name\n bad fold\nCall-ID: x@y\nTo: <sip:b@h>;tag=9\n\n";
        let m = parse(raw).unwrap();
        assert_eq!(m.status(), Some(180));
        assert_eq!(
            m.start,
            StartLine::Response {
                status: 180,
                reason: "Ringing"
            }
        );
        assert_eq!(m.call_id(), Some("x@y"));
        assert_eq!(m.to().unwrap().tag(), Some("9"));
        // " bad fold" continues the previous (rejected) line's slot; the two rejected lines count.
        assert!(m.malformed_headers() >= 2);
        assert!(m.body().is_empty());
    }

    #[test]
    fn duplicated_single_valued_header_first_wins() {
        let raw = crlf(
            "INVITE sip:1@h SIP/2.0\nt: <sip:97239287044@h>\nTo: <sip:12345@h>\nCall-ID: a\ncall-id: b\n\n",
        );
        let m = parse(&raw).unwrap();
        assert_eq!(m.to().unwrap().uri.user, Some("97239287044"));
        assert_eq!(m.call_id(), Some("a"));
        assert_eq!(m.headers(HeaderName::To).count(), 2);
    }

    #[test]
    fn refer_with_compact_headers_and_escaped_replaces() {
        let raw = crlf(
            "REFER sip:bob@10.0.0.2 SIP/2.0\n\
i: refer-1@h\n\
r: <sip:carol@10.0.0.3?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>\n\
b: \"Alice\" <sip:alice@10.0.0.1>\n\
CSeq: 93809824 REFER\n\n",
        );
        let m = parse(&raw).unwrap();
        assert_eq!(m.method(), Some(&Method::Refer));
        let rt = m.refer_to().unwrap();
        assert_eq!(rt.uri.user, Some("carol"));
        let r = rt.uri.replaces().unwrap();
        assert_eq!(r.call_id, "12345@192.168.118.3");
        assert_eq!(
            (r.to_tag.as_str(), r.from_tag.as_str(), r.early_only),
            ("12345", "5FFE-3994", false)
        );
        assert_eq!(m.referred_by().unwrap().display, Some("Alice"));
        assert_eq!(m.cseq().unwrap().method, Method::Refer);
    }

    #[test]
    fn invite_with_replaces_header() {
        let raw = crlf(
            "INVITE sip:bob@h SIP/2.0\nCall-ID: new@h\nReplaces: 425928@bobster.example.org;from-tag=7743;to-tag=6472;early-only\n\n",
        );
        let r = parse(&raw).unwrap().replaces().unwrap();
        assert_eq!(r.call_id, "425928@bobster.example.org");
        assert_eq!(
            (r.to_tag.as_str(), r.from_tag.as_str(), r.early_only),
            ("6472", "7743", true)
        );
    }

    #[test]
    fn diversion_history_info_and_pai() {
        let raw = crlf(
            "INVITE sip:+15550001@gw SIP/2.0\n\
Diversion: <sip:+15551111@a>;reason=unconditional;counter=1, \"Desk\" <sip:+15552222@b>;reason=\"no-answer\"\n\
History-Info: <sip:first@h?Reason=SIP%3Bcause%3D302%3Btext%3D%22Moved%22>;index=1, <sip:second@h>;index=1.1\n\
History-Info: <sip:third@h>;index=1.1.1\n\
P-Asserted-Identity: \"Big, Corp\" <sip:+442087483020@carrier;user=phone>, <tel:+442087483020;phone-context=+44>\n\n",
        );
        let m = parse(&raw).unwrap();
        let d = m.diversion();
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].uri.user, d[0].param("reason")),
            (Some("+15551111"), Some("unconditional"))
        );
        assert_eq!(
            (d[1].display, d[1].param("Reason")),
            (Some("Desk"), Some("no-answer"))
        );
        let h = m.history_info();
        assert_eq!(
            h.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![Some("1"), Some("1.1"), Some("1.1.1")]
        );
        assert_eq!(
            h[0].addr.uri.header("reason").as_deref(),
            Some("SIP;cause=302;text=\"Moved\"")
        );
        let p = m.p_asserted_identity();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].display, Some("Big, Corp"));
        assert!(p[1].uri.is_tel());
        assert_eq!(p[1].uri.user, Some("+442087483020"));
        assert_eq!(p[1].uri.param("phone-context"), Some("+44"));
    }

    #[test]
    fn unbracketed_ipv6_request_uri_and_ipv6_sdp() {
        let raw = crlf(
            "INVITE sip:4321@2001:db8::1 SIP/2.0\nCall-ID: v6@h\nContent-Type: application/sdp\n\n\
v=0\no=- 5 6 IN IP6 2001:db8::2\nc=IN IP6 2001:db8::2\nm=audio 6000 RTP/AVP 8\n",
        );
        let m = parse(&raw).unwrap();
        let u = m.request_uri().unwrap();
        assert_eq!(
            (u.user, u.host, u.port),
            (Some("4321"), "2001:db8::1", None)
        );
        let s = m.sdp().unwrap();
        assert_eq!(s.connection, Some("2001:db8::2".parse().unwrap()));
        assert_eq!(s.media[0].codec_for(8), Some(("PCMA".into(), 8000)));
    }

    #[test]
    fn hold_reinvite_sdp() {
        let raw = crlf(
            "INVITE sip:b@h SIP/2.0\nContent-Type: Application/SDP\n\n\
v=0\nc=IN IP4 0.0.0.0\nm=audio 4000 RTP/AVP 0\na=sendonly\n",
        );
        let m = parse(&raw).unwrap();
        let s = m.sdp().unwrap();
        let a = &s.media[0];
        assert!(a.is_hold_address(&s));
        assert_eq!(a.effective_direction(&s), Direction::SendOnly);
    }

    #[test]
    fn siprec_multipart_body() {
        let body = "--foobar\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 5000 RTP/AVP 0\r\na=label:1\r\nm=audio 5002 RTP/AVP 0\r\na=label:2\r\n\
\r\n--foobar\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n<recording/>\r\n--foobar--\r\n";
        let raw = format!(
            "INVITE sip:srs@h SIP/2.0\r\nContent-Type: multipart/mixed;boundary=\"foobar\"\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let m = parse(raw.as_bytes()).unwrap();
        let s = m.sdp().unwrap();
        assert_eq!(s.media.len(), 2);
        assert_eq!(s.media[1].label.as_deref(), Some("2"));
        assert_eq!(
            m.multipart_part("application/rs-metadata+xml"),
            Some(b"<recording/>".as_slice())
        );
        assert_eq!(m.multipart_part("text/plain"), None);
    }

    #[test]
    fn content_length_bounds_and_truncation() {
        let m = parse(b"SIP/2.0 200 OK\r\nl: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((m.body(), m.body_truncated()), (b"abc".as_slice(), false));
        let m = parse(b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nabc").unwrap();
        assert_eq!((m.body(), m.body_truncated()), (b"abc".as_slice(), true));
        let m = parse(b"SIP/2.0 200 OK\r\nContent-Length: bad\r\n\r\nabc").unwrap();
        assert_eq!((m.body(), m.body_truncated()), (b"abc".as_slice(), false));
        assert_eq!(m.content_length(), Err(SipError::BadContentLength));
        let m = parse(b"SIP/2.0 200 OK\r\n\r\nrest").unwrap();
        assert_eq!(m.body(), b"rest");
        assert_eq!(m.content_length(), Ok(None));
    }

    #[test]
    fn start_line_classification() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(SipError::NotSip)
        );
        assert_eq!(parse(b"\r\n\r\n"), Err(SipError::NotSip));
        assert_eq!(parse(b""), Err(SipError::NotSip));
        assert_eq!(parse(b"\x00\x00\x00\x00"), Err(SipError::NotSip));
        assert_eq!(parse(b"INVITE sip:a@b SI"), Err(SipError::Truncated));
        assert!(matches!(
            parse(b"SIP/2.0 20 OK\r\n"),
            Err(SipError::BadStartLine { .. })
        ));
        assert!(matches!(
            parse(b"SIP/2.0 999 Weird\r\n"),
            Err(SipError::BadStartLine { .. })
        ));
        assert!(matches!(
            parse(b"INVITE  SIP/2.0\r\n"),
            Err(SipError::NotSip | SipError::BadStartLine { .. })
        ));
        let m = parse(b"invite sip:a@b sip/2.0").unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        let m = parse(b"FOO sip:a@b SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(m.method().map(Method::as_str), Some("FOO"));
        let m = parse(b"SIP/2.0 486 Busy \xffHere\r\n\r\n").unwrap();
        assert_eq!(
            m.start,
            StartLine::Response {
                status: 486,
                reason: "Busy "
            }
        );
        assert!(looks_like_sip(b"\r\nOPTIONS sip:x SIP/2.0\r\n"));
        assert!(looks_like_sip(b"SIP/2.0 100 Trying\r\n"));
        assert!(!looks_like_sip(b"HTTP/1.1 200 OK\r\n"));
        assert!(!looks_like_sip(b"\x80\x00RTP"));
        assert!(matches!(
            parse(&vec![b'x'; MAX_MESSAGE_LEN + 1]),
            Err(SipError::TooLarge { .. })
        ));
    }

    #[test]
    fn header_limit_counts_dropped_lines() {
        let mut raw = String::from("OPTIONS sip:x SIP/2.0\r\n");
        for i in 0..(MAX_HEADERS + 5) {
            raw.push_str(&format!("X-H{i}: v\r\n"));
        }
        raw.push_str("Call-ID: late\r\n\r\n");
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.headers.len(), MAX_HEADERS);
        assert_eq!(m.dropped_headers(), 6);
        assert_eq!(m.header_by_name("x-h7"), Some("v"));
        assert_eq!(m.header_by_name("i"), None);
    }

    #[test]
    fn method_mapping_round_trips() {
        for (name, m) in METHODS {
            assert_eq!(Method::from_token(name), *m);
            assert_eq!(m.as_str(), *name);
            assert_eq!(Method::from_token(&name.to_ascii_lowercase()), *m);
        }
    }
}
