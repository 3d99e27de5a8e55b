//! The bounds of a call document: what an agent writes stays well inside them, and what a
//! catalogue accepts never goes outside them (an upload is hostile until checked).
//!
//! Owns the limits and [`CallRecord::check`], which holds a document to them and to its own
//! consistency (times that read, segments in order, rates the recorder writes). Pure: the
//! checks that need the catalogue's state (segments received, their sizes) are the catalogue's.

use super::CallRecord;

/// Legs of one call (the tracker links transfers and forks; real calls have a handful).
pub const MAX_LEGS: usize = 256;
/// REFERs noted per leg.
pub const MAX_TRANSFERS_PER_LEG: usize = 64;
/// The ladder: the agent keeps the first [`crate::calls::call::MAX_SIGNALS`].
pub const MAX_SIGNALS: usize = crate::calls::call::MAX_SIGNALS;
/// One SIP message's text kept, and a call's in all (see [`crate::calls::call`]).
pub const MAX_SIGNAL_TEXT: usize = crate::calls::call::MAX_SIGNAL_TEXT;
pub const SIGNAL_TEXT_BUDGET: usize = crate::calls::call::SIGNAL_TEXT_BUDGET;
/// Holds noted per leg.
pub const MAX_HOLDS_PER_LEG: usize = crate::calls::leg::MAX_HOLDS_PER_LEG;
/// RTP streams of one call.
pub const MAX_STREAMS: usize = 256;
/// Segments of one call (a day of audio in one-minute segments is 1,440).
pub const MAX_SEGMENTS: usize = 10_000;
/// SIP Call-IDs of one call (one per leg at most).
pub const MAX_SIP_CALL_IDS: usize = MAX_LEGS;
/// Any one text field (numbers, addresses, Call-IDs, reasons).
pub const MAX_TEXT: usize = 1024;
/// The longest call: a day (a stereo 16 kHz WAV of it is 5.5 GB; the WAV format's limit is
/// 4 GiB, which the catalogue checks when it lays a call out).
pub const MAX_CALL_MS: i64 = 24 * 3600 * 1000;
/// The sample rates the recorder writes (G.711 at 8 kHz, G.722 at 16 kHz).
pub const SAMPLE_RATES: &[u32] = &[8000, 16000];
/// How far a segment may run past the call's end (the jitter buffer's flush).
const SEGMENT_SLACK_MS: u64 = 60_000;

/// What is wrong with a call document, in words an agent's operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutOfBounds(pub String);

fn rfc3339_ms(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()
}

impl CallRecord {
    /// Holds the document to the limits above and to itself.
    pub fn check(&self) -> Result<(), OutOfBounds> {
        let bad = |what: String| Err(OutOfBounds(what));
        let count = |what: &str, n: usize, max: usize| {
            if n > max {
                Err(OutOfBounds(format!("{n} {what}: at most {max}")))
            } else {
                Ok(())
            }
        };
        count("legs", self.legs.len(), MAX_LEGS)?;
        count("signalling entries", self.signalling.len(), MAX_SIGNALS)?;
        count("streams", self.streams.len(), MAX_STREAMS)?;
        count("segments", self.segments.len(), MAX_SEGMENTS)?;
        count("SIP Call-IDs", self.sip_call_ids.len(), MAX_SIP_CALL_IDS)?;
        for leg in &self.legs {
            count(
                "transfers in a leg",
                leg.transfers.len(),
                MAX_TRANSFERS_PER_LEG,
            )?;
            count("holds in a leg", leg.holds.len(), MAX_HOLDS_PER_LEG)?;
        }
        // a message's full text has bounds of its own: one message's, and the call's
        let note = 64;
        if self
            .signalling
            .iter()
            .any(|s| s.text.len() > MAX_SIGNAL_TEXT + note)
        {
            return bad(format!(
                "a signalling entry's text is longer than {MAX_SIGNAL_TEXT} bytes"
            ));
        }
        let all: usize = self.signalling.iter().map(|s| s.text.len()).sum();
        if all > SIGNAL_TEXT_BUDGET + note * MAX_SIGNALS {
            return bad(format!(
                "{all} bytes of signalling text: at most {SIGNAL_TEXT_BUDGET}"
            ));
        }
        if let Some(long) = self.texts().find(|t| t.len() > MAX_TEXT) {
            let start: String = long.chars().take(40).collect();
            return bad(format!(
                "a text field of {} bytes (\"{start}...\"): at most {MAX_TEXT}",
                long.len()
            ));
        }
        if !self.decision.record {
            return bad(
                "the decision says the call is not recorded: such a call is never shipped".into(),
            );
        }
        let Some(started) = rfc3339_ms(&self.started_at) else {
            return bad(format!(
                "started_at {:?} is not an RFC 3339 time",
                self.started_at
            ));
        };
        let ended = match self.ended_at.as_deref().map(rfc3339_ms) {
            Some(Some(e)) => e,
            Some(None) => return bad("ended_at is not an RFC 3339 time".into()),
            None => return bad("the call has not ended: ship it when it has".into()),
        };
        if ended < started || ended - started > MAX_CALL_MS {
            return bad(format!(
                "the call lasts {} ms: from 0 to {MAX_CALL_MS}",
                ended - started
            ));
        }
        let length = (ended - started) as u64 + SEGMENT_SLACK_MS;
        let mut ids: Vec<&str> = Vec::with_capacity(self.segments.len());
        for (i, s) in self.segments.iter().enumerate() {
            if uuid::Uuid::parse_str(&s.segment_id).is_err() {
                return bad(format!("segment {i}: its id is not a UUID"));
            }
            // in order (a recovered call may lack its empty last segment, no more)
            if i > 0 && self.segments[i - 1].seq >= s.seq {
                return bad(format!(
                    "segment {}: seq {} after {} (segments are listed in order, once each)",
                    s.segment_id,
                    s.seq,
                    self.segments[i - 1].seq
                ));
            }
            if !SAMPLE_RATES.contains(&s.sample_rate) {
                return bad(format!(
                    "segment {}: sample rate {} (the recorder writes {SAMPLE_RATES:?})",
                    s.segment_id, s.sample_rate
                ));
            }
            if s.offset_ms.saturating_add(s.duration_ms) > length {
                return bad(format!(
                    "segment {}: {} ms from {} ms runs past the call's end",
                    s.segment_id, s.duration_ms, s.offset_ms
                ));
            }
            ids.push(&s.segment_id);
        }
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return bad("a segment is listed twice".into());
        }
        Ok(())
    }

    /// Every free-text field of the document.
    fn texts(&self) -> impl Iterator<Item = &str> {
        let top = [
            self.call_id.as_str(),
            self.agent.as_str(),
            self.dialled_raw.as_str(),
            self.caller.as_str(),
            self.started_at.as_str(),
            self.decision.reason.as_str(),
            self.decision.rule.as_str(),
        ];
        let optional = [
            &self.dialled,
            &self.service,
            &self.answered_at,
            &self.ended_at,
            &self.end_reason,
        ];
        top.into_iter()
            .chain(optional.into_iter().flatten().map(String::as_str))
            .chain(self.sip_call_ids.iter().map(String::as_str))
            .chain(self.legs.iter().flat_map(|l| {
                [
                    l.sip_call_id.as_str(),
                    l.from.as_str(),
                    l.to.as_str(),
                    l.dialled.as_str(),
                    l.started_at.as_str(),
                    l.joined_by.as_str(),
                ]
                .into_iter()
                .chain(
                    [&l.answered_at, &l.ended_at, &l.end_reason]
                        .into_iter()
                        .flatten()
                        .map(String::as_str),
                )
                .chain(
                    l.transfers
                        .iter()
                        .flat_map(|t| [t.at.as_str(), t.target.as_str()]),
                )
                .chain(l.holds.iter().flat_map(|h| {
                    [h.by.as_str(), h.started_at.as_str()]
                        .into_iter()
                        .chain(h.ended_at.as_deref())
                }))
            }))
            .chain(self.signalling.iter().flat_map(|s| {
                [
                    s.at.as_str(),
                    s.from.as_str(),
                    s.to.as_str(),
                    s.message.as_str(),
                    s.sip_call_id.as_str(),
                ]
            }))
            .chain(self.streams.iter().flat_map(|s| {
                [
                    s.direction.as_str(),
                    s.codec.as_str(),
                    s.ssrc.as_str(),
                    s.first_seen.as_str(),
                    s.last_seen.as_str(),
                ]
            }))
            .chain(self.segments.iter().flat_map(|s| {
                [
                    s.file.as_str(),
                    s.segment_id.as_str(),
                    s.started_at.as_str(),
                    s.sha256.as_str(),
                    s.key_id.as_str(),
                ]
            }))
    }
}
