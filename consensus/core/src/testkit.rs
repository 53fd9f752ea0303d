//! Values the core's unit tests share.

use crate::types::{DepKind, DepRef, Seq};

/// The dependency on `proposer`'s batch `seq`, with an id derived from both.
pub(crate) fn txs_dep(proposer: u8, seq: Seq) -> DepRef {
    DepRef {
        proposer: [proposer; 32],
        kind: DepKind::Txs { seq },
        id: [proposer.wrapping_add(seq as u8); 32],
    }
}
