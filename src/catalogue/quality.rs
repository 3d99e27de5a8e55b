//! How a call sounded on the network, per direction, as a telephony admin reads it: codec,
//! packets, loss, late and duplicated packets, jitter, and an estimated MOS.
//!
//! Owns the figures drawn from a call document's stream summaries (the agent's counts) and
//! the MOS estimate: the ITU-T G.107 E-model, simplified as G.107's planning use allows
//! (default values for what a passive recorder cannot see: echo, noise, the far end's
//! delay), from packet loss, jitter (as the jitter buffer's added delay) and the codec's
//! impairment. It reads no audio, so silence within a direction is not judged here; a
//! direction that carried no audio at all is ("one-way audio").

use serde::Serialize;

use crate::record::StreamSummary;

/// One direction of a call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Direction {
    /// "From the caller" or "From the organisation".
    pub label: &'static str,
    /// The codecs used, in order ("PCMA", "G722, PCMA").
    pub codecs: String,
    pub streams: usize,
    pub packets: u64,
    pub lost: u64,
    /// Lost packets as a share of those sent, percent.
    pub loss_percent: f64,
    pub late: u64,
    pub duplicates: u64,
    /// Interarrival jitter (RFC 3550), the packet-weighted mean of its streams' and the
    /// worst seen, milliseconds.
    pub jitter_ms: f64,
    pub max_jitter_ms: f64,
    /// The estimated mean opinion score, 1 to 4.5 (None: nothing was heard).
    pub mos: Option<f64>,
}

/// A call's quality, both directions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quality {
    pub directions: Vec<Direction>,
    /// A direction carried no audio while the other did.
    pub one_way: Option<&'static str>,
}

/// The codec's equipment impairment and packet-loss robustness (G.113 Appendix I).
fn impairment(codec: &str) -> (f64, f64) {
    match codec.to_ascii_uppercase().as_str() {
        // with packet loss concealment
        "PCMU" | "PCMA" => (0.0, 25.1),
        "G722" => (0.0, 20.0),
        "G729" => (11.0, 19.0),
        "GSM" => (20.0, 10.0),
        "ILBC" => (11.0, 32.0),
        "OPUS" => (0.0, 20.0),
        _ => (10.0, 15.0),
    }
}

/// R to MOS (G.107 Annex B).
fn mos_of(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// The E-model's estimate for loss `ppl` (percent), jitter `jitter_ms` and `codec`.
pub fn estimated_mos(ppl: f64, jitter_ms: f64, codec: &str) -> f64 {
    let (ie, bpl) = impairment(codec);
    // one-way delay: 20 ms packets, a jitter buffer of twice the jitter, 40 ms of network
    let d = 20.0 + 2.0 * jitter_ms + 40.0;
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl);
    mos_of(93.2 - id - ie_eff)
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The quality of a call from its stream summaries.
pub fn of(streams: &[StreamSummary]) -> Quality {
    let mut directions = Vec::new();
    for (key, label) in [
        ("from_caller", "From the caller"),
        ("from_organisation", "From the organisation"),
    ] {
        let mine: Vec<&StreamSummary> = streams.iter().filter(|s| s.direction == key).collect();
        let mut codecs: Vec<&str> = Vec::new();
        for s in &mine {
            if !codecs.contains(&s.codec.as_str()) {
                codecs.push(&s.codec);
            }
        }
        let packets: u64 = mine.iter().map(|s| s.packets).sum();
        let lost: u64 = mine.iter().map(|s| s.lost).sum();
        let sent = packets + lost;
        let loss_percent = if sent == 0 {
            0.0
        } else {
            100.0 * lost as f64 / sent as f64
        };
        let jitter_ms = if packets == 0 {
            0.0
        } else {
            mine.iter()
                .map(|s| s.jitter_us as f64 / 1000.0 * s.packets as f64)
                .sum::<f64>()
                / packets as f64
        };
        let max_jitter_ms = mine
            .iter()
            .map(|s| s.max_jitter_us as f64 / 1000.0)
            .fold(0.0, f64::max);
        let heard = mine.iter().any(|s| s.decoded && s.packets > 0);
        let codec = mine
            .iter()
            .max_by_key(|s| s.packets)
            .map(|s| s.codec.as_str())
            .unwrap_or("");
        directions.push(Direction {
            label,
            codecs: if codecs.is_empty() {
                "none".into()
            } else {
                codecs.join(", ")
            },
            streams: mine.len(),
            packets,
            lost,
            loss_percent: round(loss_percent, 1),
            late: mine.iter().map(|s| s.late).sum(),
            duplicates: mine.iter().map(|s| s.duplicates).sum(),
            jitter_ms: round(jitter_ms, 1),
            max_jitter_ms: round(max_jitter_ms, 1),
            mos: heard.then(|| round(estimated_mos(loss_percent, jitter_ms, codec), 1)),
        });
    }
    let one_way = match (directions[0].mos.is_some(), directions[1].mos.is_some()) {
        (false, true) => Some("nothing was heard from the caller"),
        (true, false) => Some("nothing was heard from the organisation"),
        _ => None,
    };
    Quality {
        directions,
        one_way,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(direction: &str, packets: u64, lost: u64, jitter_us: u64) -> StreamSummary {
        StreamSummary {
            direction: direction.into(),
            codec: "PCMA".into(),
            decoded: true,
            ssrc: "0x1".into(),
            packets,
            lost,
            duplicates: 0,
            late: 0,
            events: 0,
            resyncs: 0,
            relay_copies: 0,
            jitter_us,
            max_jitter_us: jitter_us * 2,
            first_seen: String::new(),
            last_seen: String::new(),
        }
    }

    #[test]
    fn a_clean_g711_call_scores_as_g711_does() {
        // G.711 with no loss and little delay: R about 91.7, MOS about 4.4
        let m = estimated_mos(0.0, 1.0, "PCMA");
        assert!((4.3..=4.45).contains(&m), "{m}");
        // loss costs: 1 % about 0.1, 5 % about 0.8 (G.113's G.711 with concealment)
        assert!(estimated_mos(1.0, 1.0, "PCMA") < m - 0.05);
        let five = estimated_mos(5.0, 1.0, "PCMA");
        assert!((3.6..=3.95).contains(&five), "{five}");
        // heavy jitter costs through the buffer's delay
        assert!(estimated_mos(0.0, 150.0, "PCMA") < m - 0.2);
    }

    #[test]
    fn directions_add_their_streams_and_one_way_audio_is_named() {
        let q = of(&[
            stream("from_caller", 900, 100, 2000),
            stream("from_caller", 1000, 0, 4000),
        ]);
        let c = &q.directions[0];
        assert_eq!((c.packets, c.lost, c.streams), (1900, 100, 2));
        assert_eq!(c.loss_percent, 5.0);
        assert_eq!(c.jitter_ms, 3.1);
        assert_eq!(c.max_jitter_ms, 8.0);
        assert!(c.mos.is_some());
        assert_eq!(q.directions[1].codecs, "none");
        assert_eq!(q.one_way, Some("nothing was heard from the organisation"));
    }
}
