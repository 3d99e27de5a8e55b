//! SIP header names and values: owns the mapping from wire names (any case, compact forms) to
//! [`HeaderName`], the stored [`Header`] view, comma splitting of multi-valued headers and the
//! `;name=value` parameter scanner shared by Via, name-addr and URI parameters.
//!
//! Receives header names and value text borrowed from one message; emits borrowed sub-slices.
//! Allocates only to unescape a quoted string that holds escapes (folded values are unfolded
//! by the message parser, not here) and never
//! panics on any text: every scanner walks bytes with bounds it checked itself.

use std::borrow::Cow;

/// Headers the recorder interprets. Everything else is [`HeaderName::Other`] and is still kept
/// with its raw name, so it can be looked up with `Message::header_by_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    CallId,
    From,
    To,
    CSeq,
    Via,
    Contact,
    ContentType,
    ContentLength,
    PAssertedIdentity,
    Diversion,
    HistoryInfo,
    ReferTo,
    ReferredBy,
    Replaces,
    Event,
    SubscriptionState,
    Supported,
    Require,
    RecordRoute,
    Route,
    Reason,
    UserAgent,
    Allow,
    AllowEvents,
    ContentEncoding,
    Subject,
    SessionExpires,
    Expires,
    Other,
}

/// Full names, matched case-insensitively. Order does not matter; the table is short enough
/// that a linear scan beats hashing for the ~15 headers of a typical message.
const FULL_NAMES: &[(&str, HeaderName)] = &[
    ("Call-ID", HeaderName::CallId),
    ("From", HeaderName::From),
    ("To", HeaderName::To),
    ("CSeq", HeaderName::CSeq),
    ("Via", HeaderName::Via),
    ("Contact", HeaderName::Contact),
    ("Content-Type", HeaderName::ContentType),
    ("Content-Length", HeaderName::ContentLength),
    ("P-Asserted-Identity", HeaderName::PAssertedIdentity),
    ("Diversion", HeaderName::Diversion),
    ("History-Info", HeaderName::HistoryInfo),
    ("Refer-To", HeaderName::ReferTo),
    ("Referred-By", HeaderName::ReferredBy),
    ("Replaces", HeaderName::Replaces),
    ("Event", HeaderName::Event),
    ("Subscription-State", HeaderName::SubscriptionState),
    ("Supported", HeaderName::Supported),
    ("Require", HeaderName::Require),
    ("Record-Route", HeaderName::RecordRoute),
    ("Route", HeaderName::Route),
    ("Reason", HeaderName::Reason),
    ("User-Agent", HeaderName::UserAgent),
    ("Allow", HeaderName::Allow),
    ("Allow-Events", HeaderName::AllowEvents),
    ("Content-Encoding", HeaderName::ContentEncoding),
    ("Subject", HeaderName::Subject),
    ("Session-Expires", HeaderName::SessionExpires),
    ("Expires", HeaderName::Expires),
];

impl HeaderName {
    /// Maps a header name as it appeared on the wire (any case, RFC 3261 / RFC 3515 / RFC 3892
    /// compact forms included) to a known header, or `Other`.
    pub fn from_wire(name: &str) -> HeaderName {
        let name = name.trim_matches([' ', '\t']);
        if let [c] = name.as_bytes() {
            return match c.to_ascii_lowercase() {
                b'i' => HeaderName::CallId,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'v' => HeaderName::Via,
                b'm' => HeaderName::Contact,
                b'c' => HeaderName::ContentType,
                b'l' => HeaderName::ContentLength,
                b'r' => HeaderName::ReferTo,
                b'b' => HeaderName::ReferredBy,
                b'k' => HeaderName::Supported,
                b'o' => HeaderName::Event,
                b'e' => HeaderName::ContentEncoding,
                b's' => HeaderName::Subject,
                b'x' => HeaderName::SessionExpires,
                b'u' => HeaderName::AllowEvents,
                _ => HeaderName::Other,
            };
        }
        FULL_NAMES
            .iter()
            .find(|(full, _)| full.eq_ignore_ascii_case(name))
            .map_or(HeaderName::Other, |&(_, h)| h)
    }

    /// The canonical (long) spelling, `None` for `Other`.
    pub fn canonical(self) -> Option<&'static str> {
        FULL_NAMES
            .iter()
            .find(|&&(_, h)| h == self)
            .map(|&(n, _)| n)
    }

    /// Headers whose value is a comma-separated list (RFC 3261 section 7.3.1), so that
    /// `Via: a, b` and two `Via:` lines mean the same. Call-ID, From, To, CSeq, Refer-To,
    /// Referred-By and Replaces are single-valued: a comma there is data, not a separator.
    pub fn is_multi_valued(self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Diversion
                | HeaderName::HistoryInfo
                | HeaderName::PAssertedIdentity
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::Allow
                | HeaderName::AllowEvents
        )
    }
}

/// One header line (after unfolding) of a parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: HeaderName,
    /// The name exactly as sent (e.g. `"f"` or `"FROM"`).
    pub raw_name: &'a str,
    /// Value with surrounding whitespace removed. Borrowed unless the header was folded over
    /// several lines or was not valid UTF-8 (then invalid bytes became U+FFFD).
    pub value: Cow<'a, str>,
}

/// Iterator over the values of header occurrences; splits on commas outside quotes and `<...>`
/// when `split` is set, otherwise yields each value whole.
#[derive(Debug, Clone)]
pub struct CommaSplit<'s> {
    rest: &'s str,
    split: bool,
}

impl<'s> CommaSplit<'s> {
    pub fn new(value: &'s str, split: bool) -> Self {
        CommaSplit { rest: value, split }
    }
}

impl<'s> Iterator for CommaSplit<'s> {
    type Item = &'s str;

    fn next(&mut self) -> Option<&'s str> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            if !self.split {
                let whole = self.rest.trim_matches([' ', '\t']);
                self.rest = "";
                return (!whole.is_empty()).then_some(whole);
            }
            let cut = find_unquoted(self.rest, b',');
            let (piece, rest) = match cut {
                Some(i) => (
                    self.rest.get(..i).unwrap_or(""),
                    self.rest.get(i + 1..).unwrap_or(""),
                ),
                None => (self.rest, ""),
            };
            self.rest = rest;
            let piece = piece.trim_matches([' ', '\t']);
            if !piece.is_empty() {
                return Some(piece);
            }
        }
    }
}

/// Position of the first `sep` that is outside a quoted string and outside `<...>`.
/// Backslash escapes inside quotes are honoured; an unterminated quote or `<` swallows the rest.
pub(crate) fn find_unquoted(s: &str, sep: u8) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    let mut angle = false;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quote = false;
            }
            continue;
        }
        match b {
            b'"' => in_quote = true,
            b'<' => angle = true,
            b'>' => angle = false,
            _ if b == sep && !angle => return Some(i),
            _ => {}
        }
    }
    None
}

/// Iterator over `;name=value` parameters (leading `;` optional). Values in double quotes are
/// returned without the quotes (still backslash-escaped). A flag parameter has value `""`.
#[derive(Debug, Clone)]
pub struct Params<'s> {
    rest: &'s str,
}

impl<'s> Params<'s> {
    pub fn new(params: &'s str) -> Self {
        Params { rest: params }
    }
}

impl<'s> Iterator for Params<'s> {
    type Item = (&'s str, &'s str);

    fn next(&mut self) -> Option<(&'s str, &'s str)> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (piece, rest) = match find_unquoted(self.rest, b';') {
                Some(i) => (
                    self.rest.get(..i).unwrap_or(""),
                    self.rest.get(i + 1..).unwrap_or(""),
                ),
                None => (self.rest, ""),
            };
            self.rest = rest;
            let piece = piece.trim_matches([' ', '\t']);
            if piece.is_empty() {
                continue;
            }
            let (name, value) = match piece.split_once('=') {
                Some((n, v)) => (
                    n.trim_matches([' ', '\t']),
                    unquote(v.trim_matches([' ', '\t'])),
                ),
                None => (piece, ""),
            };
            return Some((name, value));
        }
    }
}

/// Value of the parameter `name` (case-insensitive) in a `;a=b;c` list; `Some("")` for a flag.
pub fn find_param<'s>(params: &'s str, name: &str) -> Option<&'s str> {
    Params::new(params)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Strips one pair of surrounding double quotes, if present.
pub(crate) fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

/// Removes backslash escapes from quoted-string content (`\"` → `"`); borrows when there are none.
pub fn unescape_quoted(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        assert_eq!(HeaderName::from_wire("i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("r"), HeaderName::ReferTo);
        assert_eq!(HeaderName::from_wire("b"), HeaderName::ReferredBy);
        assert_eq!(HeaderName::from_wire("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_wire("x"), HeaderName::SessionExpires);
        assert_eq!(
            HeaderName::from_wire("P-ASSERTED-IDENTITY"),
            HeaderName::PAssertedIdentity
        );
        assert_eq!(HeaderName::from_wire("X-Custom"), HeaderName::Other);
        assert_eq!(HeaderName::from_wire("q"), HeaderName::Other);
        assert_eq!(HeaderName::CallId.canonical(), Some("Call-ID"));
        assert_eq!(HeaderName::Other.canonical(), None);
    }

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v = r#""Smith, J \"x,y\"" <sip:a@b;p=1,2>;tag=1 , <sip:c@d>,,sip:e@f"#;
        let parts: Vec<_> = CommaSplit::new(v, true).collect();
        assert_eq!(
            parts,
            vec![
                r#""Smith, J \"x,y\"" <sip:a@b;p=1,2>;tag=1"#,
                "<sip:c@d>",
                "sip:e@f"
            ]
        );
        let whole: Vec<_> = CommaSplit::new(" a, b ", false).collect();
        assert_eq!(whole, vec!["a, b"]);
    }

    #[test]
    fn params_any_case_quoted_and_flags() {
        let p = ";TAG=abc; Reason=\"unconditional;x\";lr;counter=2";
        assert_eq!(find_param(p, "tag"), Some("abc"));
        assert_eq!(find_param(p, "reason"), Some("unconditional;x"));
        assert_eq!(find_param(p, "LR"), Some(""));
        assert_eq!(find_param(p, "counter"), Some("2"));
        assert_eq!(find_param(p, "missing"), None);
    }

    #[test]
    fn quoted_unescape() {
        assert_eq!(unescape_quoted(r#"A \"B\" C"#), r#"A "B" C"#);
        assert!(matches!(unescape_quoted("plain"), Cow::Borrowed("plain")));
        assert_eq!(unescape_quoted("trailing\\"), "trailing");
    }
}
