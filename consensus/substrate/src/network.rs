//! The `/{genesis}/bsmr/2` notification protocol: framing, peer authentication, rate limits.
//!
//! Every notification is one tag byte and a SCALE payload:
//! - `0` [`Hello`]: sent first on every opened substream by a validator, a signature of its
//!   `bsmr` key over the libp2p PeerId it speaks from. The receiver checks it against the
//!   PeerId the transport authenticated, so a peer can only ever speak for its own key: this is
//!   what makes the core's "authenticated links" true (f+1 distinct senders really are distinct).
//! - `1` a consensus-core [`Message`](bsmr_consensus_core::Message) (decoded by the core's bounded
//!   decoder).
//! - `2` a signed [`FinalityVote`].
//!
//! Core messages and finality votes from a peer that has not said a valid Hello for a member key
//! are dropped. Malformed or oversized notifications and peers over their rate cost reputation
//! (see [`cost`]); nothing a peer sends can crash the node.

use crate::justification::FinalityVote;
use bsmr_consensus_core::{
    crypto::Signable, wire::MAX_MESSAGE_BYTES, Digest, Epoch, Signed, ValidatorId,
};
use codec::{Decode, DecodeLimit, Encode};
use sc_network::{PeerId, ProtocolName, ReputationChange};
use std::collections::BTreeMap;

/// The largest notification accepted (a core message plus the frame).
pub const MAX_NOTIFICATION_SIZE: u64 = MAX_MESSAGE_BYTES as u64 + 1024;

/// Reputation costs.
pub mod cost {
    use super::ReputationChange;
    /// Undecodable notification.
    pub const MALFORMED: ReputationChange =
        ReputationChange::new(-(1 << 12), "bsmr: malformed message");
    /// A Hello whose signature does not verify for this peer.
    pub const BAD_HELLO: ReputationChange =
        ReputationChange::new(-(1 << 16), "bsmr: bad hello signature");
    /// Over the per-peer message rate.
    pub const FLOOD: ReputationChange = ReputationChange::new(-(1 << 10), "bsmr: message flood");
    /// A finality vote with a bad signature.
    pub const BAD_VOTE: ReputationChange =
        ReputationChange::new(-(1 << 14), "bsmr: bad finality vote");
}

/// `/{genesis hash hex}/bsmr/2` (2: a pre-prepare names each dependency of its proof once).
pub fn protocol_name(genesis: &[u8]) -> ProtocolName {
    chain_protocol(genesis, "2")
}

/// `/{genesis hash hex}/bsmr/{suffix}`: bsmr's protocols are named per chain.
pub fn chain_protocol(genesis: &[u8], suffix: &str) -> ProtocolName {
    let mut s = String::from("/");
    for b in genesis {
        s.push_str(&format!("{b:02x}"));
    }
    s.push_str("/bsmr/");
    s.push_str(suffix);
    s.into()
}

/// A validator's claim of speaking from a PeerId.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Hello {
    /// The PeerId bytes the sender speaks from.
    pub peer: Vec<u8>,
}

impl Signable for Hello {
    const TAG: &'static [u8] = b"hello";
    fn epoch(&self) -> Epoch {
        0
    }
}

/// A decoded notification.
#[derive(Debug)]
pub enum Frame {
    /// A validator introduces itself.
    Hello(Signed<Hello>),
    /// Raw core message bytes (decoded by the core).
    Core(Vec<u8>),
    /// A finality vote.
    Finality(Signed<FinalityVote>),
}

const TAG_HELLO: u8 = 0;
const TAG_CORE: u8 = 1;
const TAG_FINALITY: u8 = 2;

impl Frame {
    /// Encode for the wire.
    pub fn encode_frame(&self) -> Vec<u8> {
        match self {
            Frame::Hello(h) => prefixed(TAG_HELLO, &h.encode()),
            Frame::Core(b) => prefixed(TAG_CORE, b),
            Frame::Finality(v) => prefixed(TAG_FINALITY, &v.encode()),
        }
    }

    /// Decode untrusted bytes: bounded size and depth, every byte consumed, never panics.
    pub fn decode_frame(bytes: &[u8]) -> Option<Frame> {
        if bytes.len() as u64 > MAX_NOTIFICATION_SIZE {
            return None;
        }
        let (tag, rest) = bytes.split_first()?;
        match *tag {
            TAG_HELLO => exact::<Signed<Hello>>(rest)
                .filter(|h| h.body.peer.len() <= 128)
                .map(Frame::Hello),
            TAG_CORE => Some(Frame::Core(rest.to_vec())),
            TAG_FINALITY => exact::<Signed<FinalityVote>>(rest).map(Frame::Finality),
            _ => None,
        }
    }
}

fn prefixed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 1);
    v.push(tag);
    v.extend_from_slice(body);
    v
}

fn exact<T: Decode>(mut input: &[u8]) -> Option<T> {
    let t = T::decode_with_depth_limit(8, &mut input).ok()?;
    input.is_empty().then_some(t)
}

/// A Hello for `peer`, signed by the local validator.
pub fn hello(peer: &PeerId, genesis: &Digest, signer: &dyn bsmr_consensus_core::Signer) -> Frame {
    Frame::Hello(Signed::sign(
        Hello {
            peer: peer.to_bytes(),
        },
        genesis,
        signer,
    ))
}

/// Check a Hello received from `peer`; returns the validator it authenticates.
pub fn check_hello(
    h: &Signed<Hello>,
    peer: &PeerId,
    genesis: &Digest,
    verifier: &dyn bsmr_consensus_core::Verifier,
) -> Option<ValidatorId> {
    (h.body.peer == peer.to_bytes() && h.verify(genesis, verifier)).then_some(h.signer)
}

/// Per-peer token bucket: `rate` messages per second, bursts up to `burst`.
#[derive(Clone, Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: BTreeMap<PeerId, (f64, u64)>,
}

impl RateLimit {
    /// A limiter.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimit {
            rate,
            burst,
            buckets: BTreeMap::new(),
        }
    }

    /// Take one token for `peer` at `now_ms`; false when the peer is over its rate.
    pub fn allow(&mut self, peer: &PeerId, now_ms: u64) -> bool {
        let (tokens, last) = self.buckets.entry(*peer).or_insert((self.burst, now_ms));
        let elapsed = now_ms.saturating_sub(*last) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forget a disconnected peer.
    pub fn remove(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_consensus_core::InsecureTestCrypto;

    #[test]
    fn hello_binds_key_to_peer() {
        let k = InsecureTestCrypto([3; 32]);
        let (p, q) = (PeerId::random(), PeerId::random());
        let Frame::Hello(h) = Frame::decode_frame(&hello(&p, &[1; 32], &k).encode_frame()).unwrap()
        else {
            panic!()
        };
        assert_eq!(check_hello(&h, &p, &[1; 32], &k), Some([3; 32]));
        assert_eq!(
            check_hello(&h, &q, &[1; 32], &k),
            None,
            "replayed from another peer"
        );
        assert_eq!(check_hello(&h, &p, &[2; 32], &k), None, "another chain");
    }

    #[test]
    fn garbage_frames_are_rejected() {
        assert!(Frame::decode_frame(&[]).is_none());
        assert!(Frame::decode_frame(&[9, 1, 2]).is_none());
        assert!(Frame::decode_frame(&[TAG_FINALITY, 1, 2]).is_none());
        let mut huge = vec![TAG_CORE];
        huge.resize(MAX_NOTIFICATION_SIZE as usize + 2, 0);
        assert!(Frame::decode_frame(&huge).is_none());
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = Frame::decode_frame(&bytes);
        }
    }

    #[test]
    fn rate_limit_refills() {
        let mut r = RateLimit::new(10.0, 2.0);
        let p = PeerId::random();
        assert!(r.allow(&p, 0) && r.allow(&p, 0));
        assert!(!r.allow(&p, 0));
        assert!(r.allow(&p, 100));
    }

    #[test]
    fn protocol_name_names_the_chain() {
        assert_eq!(&*protocol_name(&[0xab, 0x01]), "/ab01/bsmr/2");
    }
}
