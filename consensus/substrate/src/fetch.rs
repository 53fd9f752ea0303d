//! The `/{genesis}/bsmr/fetch/2` request-response protocol: payload and certificate fetch.
//!
//! Notifications carry what every validator must see; a fetch is one validator asking one peer
//! for something it missed, and wants exactly one answer:
//! - [`FetchRequest::Core`]: a consensus-core `Fetch` (the payload and decision of an instance)
//!   `SyncRequest` (finished blocks from an index on) or `SettledRequest` (what is settled at a
//!   finalized block, for a validator rejoining from the chain). The server hands it to its core as a
//!   message from the requester and answers with the messages the core addressed to it; the
//!   requester feeds them to its core like notifications. Only members may ask.
//! - [`FetchRequest::Certificate`]: the BSMR justification of a finalized block, so that a
//!   validator whose block is stuck waiting for finality votes it missed (they are not stored by
//!   peers once the block is final) can finish it. Public data, like block sync.
//!
//! Requests and responses are SCALE with bounded sizes; undecodable or unexpected ones cost the
//! peer reputation and never reach the core.

use bsmr_consensus_core::{wire::MAX_MESSAGE_BYTES, Message};
use codec::{Decode, DecodeLimit, Encode};
use sc_network::{ProtocolName, ReputationChange};
use std::time::Duration;

/// Largest request: one encoded core message.
pub const MAX_REQUEST_SIZE: u64 = MAX_MESSAGE_BYTES as u64 + 1024;
/// Largest response: a few dozen finished blocks or one certificate.
pub const MAX_RESPONSE_SIZE: u64 = 16 * 1024 * 1024;
/// Most core messages in one response (the rest is asked for again later).
pub const MAX_RESPONSE_MESSAGES: usize = 64;
/// How long a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Inbound requests queued before new ones are refused.
pub const INBOUND_QUEUE: usize = 256;

/// Reputation costs of this protocol.
pub mod cost {
    use super::ReputationChange;
    /// Undecodable request or response, or a core message that is not a fetch.
    pub const BAD_FETCH: ReputationChange =
        ReputationChange::new(-(1 << 12), "bsmr: malformed fetch");
    /// A certificate that does not verify.
    pub const BAD_CERTIFICATE: ReputationChange =
        ReputationChange::new(-(1 << 14), "bsmr: bad certificate");
}

/// `/{genesis hash hex}/bsmr/fetch/2` (2: answers carry pre-prepares in their new encoding).
pub fn protocol_name(genesis: &[u8]) -> ProtocolName {
    crate::network::chain_protocol(genesis, "fetch/2")
}

/// What a peer asks for.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum FetchRequest {
    /// An encoded core message: `Fetch` or `SyncRequest` only.
    Core(Vec<u8>),
    /// The certificate of finalized block `number`.
    Certificate {
        /// Block number.
        number: u64,
    },
}

/// The answer.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum FetchResponse {
    /// Encoded core messages the server's core addressed to the requester.
    Core(Vec<Vec<u8>>),
    /// The finalized block's hash and BSMR justification, if the server has them.
    Certificate(Option<([u8; 32], Vec<u8>)>),
}

impl FetchRequest {
    /// Decode untrusted bytes: bounded depth, every byte consumed.
    pub fn decode_untrusted(bytes: &[u8]) -> Option<Self> {
        decode_all(bytes)
    }
}

impl FetchResponse {
    /// Decode untrusted bytes: bounded depth, every byte consumed, at most
    /// [`MAX_RESPONSE_MESSAGES`] core messages.
    pub fn decode_untrusted(bytes: &[u8]) -> Option<Self> {
        let r: Self = decode_all(bytes)?;
        match &r {
            FetchResponse::Core(m) if m.len() > MAX_RESPONSE_MESSAGES => None,
            _ => Some(r),
        }
    }
}

/// Whether a core message may travel as a fetch request.
pub fn is_fetch(msg: &Message) -> bool {
    matches!(
        msg,
        Message::Fetch(_) | Message::SyncRequest(_) | Message::SettledRequest { .. }
    )
}

fn decode_all<T: Decode>(bytes: &[u8]) -> Option<T> {
    let mut input = bytes;
    let v = T::decode_with_depth_limit(16, &mut input).ok()?;
    input.is_empty().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_consensus_core::{encode_message, InstanceId};

    #[test]
    fn requests_and_responses_round_trip() {
        let core = FetchRequest::Core(encode_message(&Message::SyncRequest(7)));
        assert_eq!(
            FetchRequest::decode_untrusted(&core.encode()),
            Some(core.clone())
        );
        let cert = FetchRequest::Certificate { number: 42 };
        assert_eq!(FetchRequest::decode_untrusted(&cert.encode()), Some(cert));
        let resp = FetchResponse::Certificate(Some(([1; 32], vec![1, 2, 3])));
        assert_eq!(
            FetchResponse::decode_untrusted(&resp.encode()),
            Some(resp.clone())
        );
    }

    #[test]
    fn garbage_trailing_bytes_and_oversized_answers_are_refused() {
        assert_eq!(FetchRequest::decode_untrusted(&[9, 9, 9]), None);
        let mut bytes = FetchRequest::Certificate { number: 1 }.encode();
        bytes.push(0);
        assert_eq!(FetchRequest::decode_untrusted(&bytes), None);
        let many = FetchResponse::Core(vec![vec![0u8]; MAX_RESPONSE_MESSAGES + 1]);
        assert_eq!(FetchResponse::decode_untrusted(&many.encode()), None);
    }

    #[test]
    fn only_fetch_and_sync_requests_are_fetches() {
        assert!(is_fetch(&Message::SyncRequest(3)));
        assert!(is_fetch(&Message::Fetch(InstanceId::Ckpt(1))));
        assert!(!is_fetch(&Message::SyncBlock(
            bsmr_consensus_core::FinishedBlock {
                index: 1,
                ..Default::default()
            }
        )));
    }

    #[test]
    fn protocol_names_differ_per_chain() {
        assert_ne!(protocol_name(&[1; 32]), protocol_name(&[2; 32]));
        assert!(protocol_name(&[0; 32]).ends_with("/bsmr/fetch/2"));
    }
}
