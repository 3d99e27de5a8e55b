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
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"SIP ladder: {} messages between {} addresses\" class=\"ladder\">",
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
        if a == b {
            out.push_str(&format!(
                "<text x=\"{a}\" y=\"{y}\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
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
            "<line x1=\"{from}\" y1=\"{y}\" x2=\"{to}\" y2=\"{y}\" stroke=\"#0b3d5c\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
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

    fn sig(at: &str, from: &str, to: &str, m: &str) -> SignalRecord {
        SignalRecord {
            at: at.into(),
            from: from.into(),
            to: to.into(),
            message: m.into(),
            sip_call_id: "x".into(),
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
