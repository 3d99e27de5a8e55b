//! The SIP ladder of a recorded call as SVG: one column per address, one arrow per message,
//! in order, labelled with the message and its time from the first one (what sngrep and
//! Homer show). Drawn on the server, so the page needs no script for it.

use crate::record::SignalRecord;

/// Escapes text for SVG/HTML (the labels come from the wire).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A SIP message's text with the numbers and names of the people on it masked, for a role
/// that may see how a call was handled but not who was on it (the admin): the user part of
/// every `sip:`, `sips:` and `tel:` URI, every quoted display name, and any other run of six
/// or more digits (a number in a header of the PBX's own; addresses and ports have fewer).
pub fn mask_numbers(text: &str) -> String {
    let named: String = text
        .split_inclusive('\n')
        .map(display_names_masked)
        .collect();
    mask_uris_and_digits(&named)
}

/// Headers whose values are name-addrs (RFC 3261 section 20), compact forms too: what
/// comes before a `<` in them is a display name, quoted or not.
const NAME_ADDR_HEADERS: &[&str] = &[
    "from",
    "f",
    "to",
    "t",
    "contact",
    "m",
    "p-asserted-identity",
    "p-preferred-identity",
    "remote-party-id",
    "diversion",
    "referred-by",
    "b",
    "refer-to",
    "r",
    "reply-to",
    "history-info",
    "p-called-party-id",
];

/// One line with the display names of a name-addr header masked.
fn display_names_masked(line: &str) -> String {
    let Some(colon) = line.find(':') else {
        return line.to_owned();
    };
    if !NAME_ADDR_HEADERS
        .iter()
        .any(|h| line[..colon].trim().eq_ignore_ascii_case(h))
    {
        return line.to_owned();
    }
    let mut out = String::from(&line[..=colon]);
    // the part of a value before its `<`, while it may still be a display name
    let mut pending = String::new();
    let (mut quoted, mut escaped, mut angle, mut named) = (false, false, false, false);
    for c in line[colon + 1..].chars() {
        if !named && !angle {
            if escaped {
                escaped = false;
            } else if quoted && c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = !quoted;
            } else if !quoted && c == '<' {
                let lead = pending.len() - pending.trim_start().len();
                out.push_str(&pending[..lead]);
                if !pending.trim().is_empty() {
                    out.push_str("••• ");
                }
                pending.clear();
                out.push('<');
                angle = true;
                continue;
            } else if !quoted && c == ',' {
                // a bare addr-spec: no display name
                out.push_str(&pending);
                pending.clear();
                out.push(',');
                continue;
            }
            pending.push(c);
            continue;
        }
        out.push(c);
        if angle && c == '>' {
            angle = false;
            named = true;
        } else if named && c == ',' {
            named = false;
        }
    }
    // a quote never closed: what stands before the last `<` is the name
    match pending.rfind('<').filter(|_| quoted) {
        Some(k) => {
            out.push_str(" ••• ");
            out.push_str(&pending[k..]);
        }
        None => out.push_str(&pending),
    }
    out
}

/// URI user parts, quoted strings (to the end of their line, `\"` escapes honoured) and
/// runs of six or more digits, masked.
fn mask_uris_and_digits(text: &str) -> String {
    const MASK: &str = "•••";
    let stop = |c: char| matches!(c, '>' | ';' | ' ' | '\r' | '\n' | ',' | '"' | '?' | '\t');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let lower: String = rest
            .chars()
            .take(5)
            .collect::<String>()
            .to_ascii_lowercase();
        let scheme = ["sips:", "sip:", "tel:"]
            .into_iter()
            .find(|p| lower.starts_with(p));
        if let Some(p) = scheme {
            out.push_str(&rest[..p.len()]);
            rest = &rest[p.len()..];
            let end = rest.find(stop).unwrap_or(rest.len());
            let user_end = if p == "tel:" {
                Some(end)
            } else {
                rest[..end].find('@')
            };
            if let Some(u) = user_end.filter(|u| *u > 0) {
                out.push_str(MASK);
                rest = &rest[u..];
            }
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c == '"'
            && let Some(close) = closing_quote(&rest[1..])
        {
            out.push('"');
            out.push_str(MASK);
            out.push('"');
            rest = &rest[close + 2..];
            continue;
        }
        if c.is_ascii_digit() || (c == '+' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
            let run = rest[1..]
                .find(|d: char| !d.is_ascii_digit())
                .map_or(rest.len(), |n| n + 1);
            if rest[..run].chars().filter(char::is_ascii_digit).count() >= 6 {
                out.push_str(MASK);
            } else {
                out.push_str(&rest[..run]);
            }
            rest = &rest[run..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Where the quoted string that `s` begins inside ends (its closing `"`), on the same line.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\r' | '\n' => return None,
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

const COLUMN: usize = 210;
const ROW: usize = 30;
const TOP: usize = 50;

/// The ladder, or None when the call carries no signalling.
pub fn svg(signals: &[SignalRecord]) -> Option<String> {
    let first = signals.first()?;
    let t0 = super::store::rfc3339_ms(&first.at).unwrap_or(0);
    let mut columns: Vec<&str> = Vec::new();
    for s in signals {
        for a in [s.from.as_str(), s.to.as_str()] {
            if !columns.contains(&a) {
                columns.push(a);
            }
        }
    }
    let x = |a: &str| columns.iter().position(|c| *c == a).unwrap_or(0) * COLUMN + COLUMN / 2 + 60;
    let width = columns.len() * COLUMN + 80;
    let height = TOP + signals.len() * ROW + 20;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"group\" aria-label=\"SIP ladder: {} messages between {} addresses\" class=\"ladder\">",
        signals.len(),
        columns.len()
    );
    out.push_str("<defs><marker id=\"arrow\" markerWidth=\"10\" markerHeight=\"8\" refX=\"9\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L10,4 L0,8 z\" fill=\"#0b3d5c\"/></marker></defs>");
    for c in &columns {
        let cx = x(c);
        out.push_str(&format!(
            "<text x=\"{cx}\" y=\"20\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"bold\">{}</text><line x1=\"{cx}\" y1=\"28\" x2=\"{cx}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
            escape(c),
            height - 10
        ));
    }
    for (i, s) in signals.iter().enumerate() {
        let y = TOP + i * ROW;
        let (a, b) = (x(&s.from), x(&s.to));
        let dt = super::store::rfc3339_ms(&s.at).unwrap_or(t0) - t0;
        out.push_str(&format!(
            "<text x=\"4\" y=\"{}\" font-size=\"11\" fill=\"#555\">+{:.3}s</text>",
            y + 4,
            dt as f64 / 1000.0
        ));
        let n = i + 1;
        if a == b {
            out.push_str(&format!(
                "<a href=\"#sip-{n}\"><text x=\"{a}\" y=\"{y}\" text-anchor=\"middle\" font-size=\"12\">{}</text></a>",
                escape(&s.message)
            ));
            continue;
        }
        let (from, to) = if a < b {
            (a + 4, b - 4)
        } else {
            (a - 4, b + 4)
        };
        out.push_str(&format!(
            "<line x1=\"{from}\" y1=\"{y}\" x2=\"{to}\" y2=\"{y}\" stroke=\"#0b3d5c\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/><a href=\"#sip-{n}\"><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" class=\"msg\">{}</text></a>",
            (a + b) / 2,
            y - 5,
            escape(&s.message)
        ));
    }
    out.push_str("</svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_hides_numbers_and_names_but_not_the_signalling() {
        let text = "INVITE sip:02087483020@10.20.0.5 SIP/2.0\r\nFrom: \"Jane Caller\" <sip:+447700900123@192.0.2.10>;tag=a1\r\nTo: <sip:02087483020@10.20.0.5>\r\nContact: <sip:4711@10.20.1.5:5060>\r\nP-Asserted-Identity: <tel:+447700900123>\r\nX-Caller: 07700900123\r\nCall-ID: c1@x\r\nCSeq: 1 INVITE\r\n\r\nc=IN IP4 192.0.2.10\r\nm=audio 20000 RTP/AVP 8\r\n";
        let m = mask_numbers(text);
        for gone in ["7700900123", "02087483020", "Jane", "4711"] {
            assert!(!m.contains(gone), "{gone} in {m}");
        }
        for kept in [
            "INVITE sip:•••@10.20.0.5 SIP/2.0",
            "From: ••• <sip:•••@192.0.2.10>;tag=a1",
            "<tel:•••>",
            "X-Caller: •••",
            "Contact: <sip:•••@10.20.1.5:5060>",
            "CSeq: 1 INVITE",
            "c=IN IP4 192.0.2.10",
            "m=audio 20000 RTP/AVP 8",
        ] {
            assert!(m.contains(kept), "{kept} not in {m}");
        }
        // display names unquoted, with escaped quotes, or with a quote left open
        let odd = "From: Jane Caller <sip:1@x>;tag=1\r\nTo: \"Robert \\\"Bob\\\" Smith\" <sip:2@x>\r\nContact: \"O\\\"Neil <sip:3@x>\r\nP-Asserted-Identity: Alice <sip:4@x>, <tel:5>\r\nSubject: \"O\r\nX: Alice\" done\r\n";
        let m = mask_numbers(odd);
        for gone in ["Jane", "Bob", "Robert", "Neil", "Alice <"] {
            assert!(!m.contains(gone), "{gone} in {m}");
        }
        assert!(m.contains("From: ••• <sip:•••@x>;tag=1"), "{m}");
        assert!(
            m.contains("X: Alice\" done"),
            "a quote does not run across lines: {m}"
        );
        // a URI without a user part, and odd bytes, pass
        assert_eq!(
            mask_numbers("Route: <sip:10.0.0.1;lr>"),
            "Route: <sip:10.0.0.1;lr>"
        );
        assert_eq!(mask_numbers("é\"unclosed"), "é\"unclosed");
    }

    fn sig(at: &str, from: &str, to: &str, m: &str) -> SignalRecord {
        SignalRecord {
            at: at.into(),
            from: from.into(),
            to: to.into(),
            message: m.into(),
            sip_call_id: "x".into(),
            text: String::new(),
        }
    }

    #[test]
    fn draws_one_arrow_per_message_and_escapes_the_wire() {
        let s = svg(&[
            sig(
                "2026-01-01T00:00:00.000Z",
                "10.0.0.1:5060",
                "10.0.0.2:5060",
                "INVITE + SDP",
            ),
            sig(
                "2026-01-01T00:00:00.250Z",
                "10.0.0.2:5060",
                "10.0.0.1:5060",
                "<script>",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.matches("<line x1").count(),
            2 + 2,
            "two lifelines and two arrows"
        );
        assert!(s.contains("+0.250s"));
        assert!(!s.contains("<script>") && s.contains("&lt;script&gt;"));
        assert!(svg(&[]).is_none());
    }
}
