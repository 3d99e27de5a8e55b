//! The stream table: media address → the call and side it belongs to.
//!
//! Filled from SDP by the calls stage; looked up for every RTP packet. This is where packets of
//! out-of-scope calls are dropped (their routes carry `record = false`), before any decoding.
//! Lookups use a small multiplicative hash instead of SipHash: the keys are addresses taken
//! from SDP we parsed ourselves, the table is bounded (`MAX_ROUTES`), and the lookup is on the
//! per-packet path (with the pipeline's activity map beside it).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::calls::CallKey;
use crate::media::MediaSlot;
use crate::session::{PayloadMap, Side};
use crate::time::Timestamp;

/// Where RTP sent to an address goes.
#[derive(Clone, Debug)]
pub struct Route {
    pub call: CallKey,
    /// The call's recording, if it is recorded.
    pub slot: Option<MediaSlot>,
    /// Whose SDP announced the address (who receives there).
    pub owner: Side,
    /// Who sends to the address (the other party of the leg).
    pub peer: Side,
    /// Shared: the agent hands it to a media worker with every packet.
    pub codecs: Arc<PayloadMap>,
    pub record: bool,
    /// Set when the call has ended: packets still arriving are counted against it (not
    /// recorded) until the route expires.
    pub closed_at: Option<Timestamp>,
}

/// Media addresses tracked at most (several per call, for the default dialog limit).
pub const MAX_ROUTES: usize = 1 << 20;

#[derive(Default, Debug)]
pub struct StreamTable {
    routes: HashMap<SocketAddr, Route, BuildHasherDefault<AddrHasher>>,
}

impl StreamTable {
    #[inline]
    pub fn get(&self, addr: &SocketAddr) -> Option<&Route> {
        self.routes.get(addr)
    }

    /// Latest SDP wins: media ports are reused by consecutive calls. Returns false (and
    /// keeps nothing) when the table is full and `addr` is new: hostile SDP cannot grow it.
    pub fn insert(&mut self, addr: SocketAddr, route: Route) -> bool {
        if self.routes.len() >= MAX_ROUTES && !self.routes.contains_key(&addr) {
            return false;
        }
        self.routes.insert(addr, route);
        true
    }

    /// Forgets `addr` if it still belongs to `call` (its party moved its media elsewhere).
    pub fn remove_if_call(&mut self, addr: &SocketAddr, call: CallKey) {
        if self.routes.get(addr).is_some_and(|r| r.call == call) {
            self.routes.remove(addr);
        }
    }

    /// Gives every address of call `from` to call `into` (recorded through `slot` when it
    /// has one), swapping who owns and who sends to each when `swap_sides`.
    pub fn rehome(
        &mut self,
        from: CallKey,
        into: CallKey,
        slot: Option<MediaSlot>,
        swap_sides: bool,
    ) {
        for r in self.routes.values_mut().filter(|r| r.call == from) {
            r.call = into;
            r.slot = slot;
            r.record = slot.is_some();
            if swap_sides {
                std::mem::swap(&mut r.owner, &mut r.peer);
            }
        }
    }

    /// Marks every address of an ended call as closed: nothing more is recorded through them.
    pub fn close_call(&mut self, call: CallKey, at: Timestamp) {
        for r in self.routes.values_mut().filter(|r| r.call == call) {
            r.record = false;
            r.slot = None;
            r.closed_at = Some(at);
        }
    }

    /// Forgets addresses of calls closed before `before`.
    pub fn expire_closed(&mut self, before: Timestamp) {
        self.routes
            .retain(|_, r| r.closed_at.is_none_or(|at| at >= before));
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// FxHash-style word hasher for socket addresses.
#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // fold the high bits down: hashbrown uses the top 7 bits for control bytes
        self.0 ^ (self.0 >> 29)
    }
}

impl AddrHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(call: CallKey) -> Route {
        Route {
            call,
            slot: None,
            owner: Side::Caller,
            peer: Side::Organisation,
            codecs: Arc::default(),
            record: false,
            closed_at: None,
        }
    }

    #[test]
    fn latest_sdp_wins_and_removal_is_per_call() {
        let mut t = StreamTable::default();
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        t.insert(a, route(1));
        t.insert(b, route(1));
        t.insert(a, route(2));
        t.close_call(1, Timestamp::from_millis(1000));
        assert_eq!(t.get(&a).unwrap().call, 2);
        assert!(t.get(&a).unwrap().closed_at.is_none());
        assert_eq!(
            t.get(&b).unwrap().closed_at,
            Some(Timestamp::from_millis(1000))
        );
        t.expire_closed(Timestamp::from_millis(1001));
        assert!(t.get(&b).is_none());
        assert!(t.get(&a).is_some());
    }
}
