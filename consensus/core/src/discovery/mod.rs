//! Dependency discovery (protocol.md, "Dependency discovery"): every replica proposes its own
//! batches and checkpoint candidates ([`proposer`], with the queue in [`own`]), collects a
//! quorum of signed dependency replies for each ([`collect`]), and answers the batches of
//! others ([`replier`]) from its conflict log ([`crate::dds`]). Our waiting transactions that
//! another validator's checked batch carries wait for its fate in [`covered`].

pub mod collect;
pub mod covered;
pub mod headers;
pub mod own;
pub mod payloads;
pub mod proposer;
pub mod replier;
