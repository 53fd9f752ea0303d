//! Dependency discovery (protocol.md, "Dependency discovery"): every replica proposes its own
//! batches and checkpoint candidates ([`proposer`], with the queue in [`own`]), collects a
//! quorum of signed dependency replies for each ([`collect`]), and answers the batches of
//! others ([`replier`]) from its conflict log ([`crate::dds`]); how many of its own batches are
//! in flight at once is paced by their round trips ([`pacing`]). Our waiting transactions that
//! another validator's checked batch carries wait for its fate in [`covered`].

pub mod collect;
pub mod covered;
pub mod headers;
pub mod own;
pub mod pacing;
pub mod payloads;
pub mod proposer;
pub mod replier;
