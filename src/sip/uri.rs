//! SIP/SIPS/tel URIs, name-addr values (`"Display" <uri>;params`) and the Replaces dialog
//! identifier (RFC 3891), as borrowed views over header text.
//!
//! Receives one header value or Request-URI; emits [`Uri`], [`NameAddr`] and the small owned
//! [`Replaces`]. Accepts what real endpoints send rather than what RFC 3261 allows: IPv6 hosts
//! with or without brackets, any scheme, parameters in any case, a missing closing `>`.
//! Never panics and never copies except to unescape (`%2B` → `+`) on request.

use std::borrow::Cow;

use super::header::{Params, find_param, unescape_quoted, unquote};

/// A URI split into its parts, all still percent-escaped. `host` never carries IPv6 brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: &'a str,
    /// User part (before `@`; for `tel:` the number). A password after `:` is not included.
    pub user: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<u16>,
    /// URI parameters without the leading `;`, e.g. `transport=udp;lr`.
    pub params: &'a str,
    /// URI headers after `?`, still escaped, e.g. `Replaces=abc%40h%3Bto-tag%3D1`.
    pub headers: &'a str,
}

/// `display-name <uri>;params`, or a bare URI (then everything after the first `;` is params).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name without surrounding quotes; still backslash-escaped, see
    /// [`NameAddr::display_unescaped`].
    pub display: Option<&'a str>,
    pub uri: Uri<'a>,
    /// Header parameters after the `>`, e.g. `;tag=1928301774;reason=unconditional`.
    pub params: &'a str,
}

/// Dialog named by a Replaces header or a Replaces URI header of a Refer-To (RFC 3891).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    pub early_only: bool,
}

/// Longest Replaces field kept: a Call-ID is a word, and nothing legitimate comes close.
const MAX_REPLACES_FIELD: usize = 1024;

impl<'a> Uri<'a> {
    /// Parses `scheme:[user[:password]@]host[:port][;params][?headers]`. Returns `None` only if
    /// there is no plausible scheme.
    pub fn parse(s: &'a str) -> Option<Uri<'a>> {
        let s = s.trim_matches([' ', '\t']);
        let (scheme, rest) = s.split_once(':')?;
        let mut bytes = scheme.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return None;
        }
        let (main, headers) = rest.split_once('?').unwrap_or((rest, ""));
        if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = main.split_once(';').unwrap_or((main, ""));
            return Some(Uri {
                scheme,
                user: Some(number),
                host: "",
                port: None,
                params,
                headers,
            });
        }
        let (user, hostpart) = match main.split_once('@') {
            Some((userinfo, h)) => (
                Some(userinfo.split_once(':').map_or(userinfo, |(u, _)| u)),
                h,
            ),
            None => (None, main),
        };
        let (host, port, params) = split_hostport(hostpart);
        Some(Uri {
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
    }

    pub fn is_sip(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("sip") || self.scheme.eq_ignore_ascii_case("sips")
    }

    pub fn is_tel(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("tel")
    }

    /// The user part with `%XX` escapes decoded (`%2B44` → `+44`); borrows when nothing is escaped.
    pub fn user_unescaped(&self) -> Cow<'a, str> {
        percent_decode(self.user.unwrap_or(""))
    }

    /// The unescaped user part as an owned string, `None` when the URI has no user part.
    pub fn user_unescaped_opt(&self) -> Option<String> {
        self.user
            .filter(|u| !u.is_empty())
            .map(|_| self.user_unescaped().into_owned())
    }

    /// URI parameter by name (case-insensitive); `Some("")` for a flag such as `lr`.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        find_param(self.params, name)
    }

    /// Unescaped value of a URI header (`?Name=value&...`), e.g. `Replaces` in a Refer-To.
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        self.headers
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| percent_decode(k).eq_ignore_ascii_case(name))
            .map(|(_, v)| percent_decode(v))
    }

    /// The dialog named by an embedded `?Replaces=` header (attended transfer).
    pub fn replaces(&self) -> Option<Replaces> {
        Replaces::parse(&self.header("Replaces")?)
    }
}

/// Splits `host[:port][;params]`, accepting `[v6]:port`, bare `v6` (more than one colon means
/// the colons belong to the address, as in `sip:4321@2001:db8::1`) and non-numeric ports.
fn split_hostport(s: &str) -> (&str, Option<u16>, &str) {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, after) = inner.split_once(']').unwrap_or((inner, ""));
        let (portpart, params) = after.split_once(';').unwrap_or((after, ""));
        let port = portpart
            .strip_prefix(':')
            .and_then(|p| p.trim().parse().ok());
        return (host, port, params);
    }
    let (hostport, params) = s.split_once(';').unwrap_or((s, ""));
    let hostport = hostport.trim_matches([' ', '\t']);
    match hostport.bytes().filter(|&b| b == b':').count() {
        1 => match hostport.split_once(':') {
            Some((h, p)) => match p.trim().parse() {
                Ok(port) => (h, Some(port), params),
                Err(_) => (hostport, None, params),
            },
            None => (hostport, None, params),
        },
        _ => (hostport, None, params),
    }
}

impl<'a> NameAddr<'a> {
    /// Parses one name-addr / addr-spec value. `None` if no URI with a scheme can be found.
    pub fn parse(s: &'a str) -> Option<NameAddr<'a>> {
        let s = s.trim_matches([' ', '\t']);
        let (display, after_display) = if let Some(q) = s.strip_prefix('"') {
            let end = closing_quote(q)?;
            (Some(q.get(..end)?), q.get(end + 1..)?.trim_start())
        } else {
            match s.find('<') {
                Some(lt) => {
                    let d = s.get(..lt)?.trim_matches([' ', '\t']);
                    ((!d.is_empty()).then_some(d), s.get(lt..)?)
                }
                None => (None, s),
            }
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let (uri_text, params) = inner.split_once('>').unwrap_or((inner, ""));
            let uri = Uri::parse(uri_text)?;
            return Some(NameAddr {
                display,
                uri,
                params: params.trim_matches([' ', '\t']),
            });
        }
        // addr-spec without brackets: RFC 3261 20.10 says `;` starts header parameters here.
        let (uri_text, params) = after_display.split_once(';').unwrap_or((after_display, ""));
        let uri = Uri::parse(uri_text)?;
        Some(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// Header parameter by name (case-insensitive), e.g. `tag`, `reason`, `index`.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        find_param(self.params, name)
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.param("tag")
    }

    /// Display name with `\"` escapes removed.
    pub fn display_unescaped(&self) -> Option<Cow<'a, str>> {
        self.display.map(unescape_quoted)
    }
}

/// Index of the closing `"` in `s` (which starts just after the opening one).
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return Some(i);
        }
    }
    None
}

impl Replaces {
    /// Parses `call-id;to-tag=x;from-tag=y[;early-only]` (parameters in any order and case).
    /// Missing tags are left empty rather than rejecting the value.
    pub fn parse(s: &str) -> Option<Replaces> {
        let s = s.trim_matches([' ', '\t']);
        let (call_id, params) = s.split_once(';').unwrap_or((s, ""));
        let call_id = unquote(call_id.trim_matches([' ', '\t']));
        if call_id.is_empty() {
            return None;
        }
        let mut r = Replaces {
            call_id: bounded(call_id),
            to_tag: String::new(),
            from_tag: String::new(),
            early_only: false,
        };
        for (name, value) in Params::new(params) {
            if name.eq_ignore_ascii_case("to-tag") {
                r.to_tag = bounded(value);
            } else if name.eq_ignore_ascii_case("from-tag") {
                r.from_tag = bounded(value);
            } else if name.eq_ignore_ascii_case("early-only") {
                r.early_only = true;
            }
        }
        Some(r)
    }
}

fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_REPLACES_FIELD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_owned()
}

/// Decodes `%XX` escapes. Malformed escapes are kept literally; bytes that do not form UTF-8
/// after decoding become U+FFFD. Borrows when there is no `%`.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = b.get(i + 1).and_then(|&h| (h as char).to_digit(16));
            let lo = b.get(i + 2).and_then(|&l| (l as char).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                // hi and lo are < 16, so the byte cannot overflow.
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_with_everything() {
        let u =
            Uri::parse("sip:alice:secret@Example.COM:5070;transport=TCP;lr?Subject=hi%20there&x=1")
                .unwrap();
        assert_eq!(u.scheme, "sip");
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.host, "Example.COM");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("TRANSPORT"), Some("TCP"));
        assert_eq!(u.param("lr"), Some(""));
        assert_eq!(u.header("subject").as_deref(), Some("hi there"));
        assert_eq!(u.header("x").as_deref(), Some("1"));
        assert!(u.is_sip());
    }

    #[test]
    fn ipv6_hosts_bracketed_and_not() {
        let u = Uri::parse("sip:4321@2001:db8::1").unwrap();
        assert_eq!(
            (u.user, u.host, u.port),
            (Some("4321"), "2001:db8::1", None)
        );
        assert!(u.host.parse::<std::net::Ipv6Addr>().is_ok());
        let u = Uri::parse("sip:4321@[2001:db8::1]:5062;transport=udp").unwrap();
        assert_eq!(
            (u.host, u.port, u.params),
            ("2001:db8::1", Some(5062), "transport=udp")
        );
        let u = Uri::parse("sip:[fe80::1]").unwrap();
        assert_eq!((u.user, u.host, u.port), (None, "fe80::1", None));
    }

    #[test]
    fn tel_uri_user_is_the_number() {
        let u = Uri::parse("tel:+442087483020;phone-context=+44").unwrap();
        assert!(u.is_tel());
        assert_eq!(u.user, Some("+442087483020"));
        assert_eq!(u.host, "");
        assert_eq!(u.param("phone-context"), Some("+44"));
    }

    #[test]
    fn escaped_user_is_decoded_on_request() {
        let u = Uri::parse("sip:%2B15551234%zz@h").unwrap();
        assert_eq!(u.user, Some("%2B15551234%zz"));
        assert_eq!(u.user_unescaped(), "+15551234%zz");
        assert!(matches!(
            Uri::parse("sip:bob@h").unwrap().user_unescaped(),
            Cow::Borrowed("bob")
        ));
    }

    #[test]
    fn bad_port_keeps_host_text() {
        let u = Uri::parse("sip:bob@host:99999").unwrap();
        assert_eq!((u.host, u.port), ("host:99999", None));
        assert!(Uri::parse("no scheme here").is_none());
        assert!(Uri::parse("1sip:x").is_none());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""Bob \"The\" Builder" <sip:bob@b.com>;TAG=77;x"#).unwrap();
        assert_eq!(n.display, Some(r#"Bob \"The\" Builder"#));
        assert_eq!(
            n.display_unescaped().as_deref(),
            Some(r#"Bob "The" Builder"#)
        );
        assert_eq!(n.tag(), Some("77"));
        assert_eq!(n.uri.user, Some("bob"));

        let n = NameAddr::parse("Anonymous <sip:anon@x;user=phone>;tag=1").unwrap();
        assert_eq!(n.display, Some("Anonymous"));
        assert_eq!(n.uri.param("user"), Some("phone"));
        assert_eq!(n.tag(), Some("1"));

        let n = NameAddr::parse("sip:carol@c.com;tag=9").unwrap();
        assert_eq!(n.display, None);
        assert_eq!(n.uri.host, "c.com");
        assert_eq!(n.uri.params, "");
        assert_eq!(n.tag(), Some("9"));

        let n = NameAddr::parse("<sip:dave@d.com").unwrap();
        assert_eq!(n.uri.host, "d.com");
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_none());
        assert!(NameAddr::parse("").is_none());
    }

    #[test]
    fn replaces_from_escaped_refer_to_header() {
        let u = Uri::parse(
            "sip:carol@c.com?Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3BFROM-TAG%3D6472%3Bearly-only",
        )
        .unwrap();
        let r = u.replaces().unwrap();
        assert_eq!(r.call_id, "425928@bobster.example.org");
        assert_eq!(r.to_tag, "7743");
        assert_eq!(r.from_tag, "6472");
        assert!(r.early_only);
        assert!(Uri::parse("sip:carol@c.com").unwrap().replaces().is_none());
        assert!(Replaces::parse(" ;to-tag=1").is_none());
    }
}
