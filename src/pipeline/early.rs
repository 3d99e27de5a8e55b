//! SIP messages that arrived before the message that opens their dialog.
//!
//! A HEP feed from a proxy traces a forwarded message after its reply (the SBC's inside
//! INVITE after the agent's 200 OK to it), so a response or in-dialog request can reach the
//! pipeline before the INVITE that makes its Call-ID known. Such messages are held here, for
//! at most [`REORDER_WINDOW`] and within a byte budget, and handed back when their dialog
//! appears; otherwise they expire, and the pipeline hands an expired in-dialog request to the
//! tracker as the start of a call in progress when capture began. Owns copies of the messages' bytes only; parses nothing.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::calls::transfer::REORDER_WINDOW;
use crate::time::Timestamp;

/// Bytes held at most, over all Call-IDs (a flood of orphan messages cannot grow it).
const MAX_BYTES: usize = 1 << 20;
/// Messages held at most per Call-ID.
const MAX_PER_DIALOG: usize = 16;

/// One held message: when and between which addresses it was seen, and its bytes.
pub struct Held {
    pub time: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
pub struct EarlyMessages {
    by_call_id: HashMap<String, Vec<Held>>,
    bytes: usize,
    /// Messages not held for want of room.
    pub refused: u64,
}

impl EarlyMessages {
    /// Holds `held` for `call_id`; false (counted) when there is no room for it.
    pub fn hold(&mut self, call_id: &str, held: Held) -> bool {
        let room = self.bytes + held.bytes.len() <= MAX_BYTES;
        let list = self.by_call_id.get(call_id).map_or(0, Vec::len);
        if !room || list >= MAX_PER_DIALOG {
            self.refused += 1;
            return false;
        }
        self.bytes += held.bytes.len();
        self.by_call_id
            .entry(call_id.to_owned())
            .or_default()
            .push(held);
        true
    }

    /// The messages held for `call_id`, in the order they arrived.
    pub fn take(&mut self, call_id: &str) -> Vec<Held> {
        let held = self.by_call_id.remove(call_id).unwrap_or_default();
        self.bytes -= held.iter().map(|h| h.bytes.len()).sum::<usize>();
        held
    }

    /// Gives back what has waited longer than the reorder window, oldest dialog first.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Held> {
        let mut gone = Vec::new();
        self.by_call_id.retain(|_, held| {
            let (old, keep): (Vec<Held>, Vec<Held>) = std::mem::take(held)
                .into_iter()
                .partition(|h| now.saturating_since(h.time) > REORDER_WINDOW);
            *held = keep;
            gone.extend(old);
            !held.is_empty()
        });
        self.bytes -= gone.iter().map(|h| h.bytes.len()).sum::<usize>();
        gone.sort_by_key(|h| h.time);
        gone
    }

    /// Gives back everything held (end of capture), in the order it arrived.
    pub fn drain(&mut self) -> Vec<Held> {
        let mut gone: Vec<Held> = self.by_call_id.drain().flat_map(|(_, h)| h).collect();
        self.bytes = 0;
        gone.sort_by_key(|h| h.time);
        gone
    }

    pub fn is_empty(&self) -> bool {
        self.by_call_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ms: u64, len: usize) -> Held {
        let a: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        Held {
            time: Timestamp::from_millis(ms),
            src: a,
            dst: a,
            bytes: vec![b'x'; len],
        }
    }

    #[test]
    fn messages_are_held_within_the_window_and_the_budget() {
        let mut e = EarlyMessages::default();
        e.hold("a", held(1_000, 100));
        e.hold("a", held(1_010, 100));
        e.hold("b", held(1_020, 100));
        e.expire(Timestamp::from_millis(3_005));
        assert_eq!(e.take("a").len(), 1, "the first expired");
        assert_eq!(e.take("a").len(), 0);
        assert_eq!(e.take("b").len(), 1);
        assert!(e.is_empty());
        for i in 0..20 {
            e.hold("c", held(5_000 + i, 10));
        }
        assert_eq!(e.refused, 4);
        e.hold("d", held(5_000, MAX_BYTES));
        assert_eq!(e.refused, 5, "over the byte budget");
        assert_eq!(e.take("c").len(), MAX_PER_DIALOG);
        e.hold("d", held(5_000, MAX_BYTES));
        assert_eq!(e.take("d").len(), 1);
        assert_eq!(e.bytes, 0);
    }
}
