//! Epoch handover rules (protocol.md, "Epochs").
//!
//! A validator-set change enacted by the runtime in block b* starts epoch e+1 at index
//! s = b* + 2: the set for index b is read from the state after block b - 2. Epoch-e instances
//! for indices >= s and epoch-e Txs commands with after >= s - 1 are void (executed as nothing,
//! their transactions re-proposed in e+1); every fence in epoch e+1 starts at s - 1.
//!
//! A replica runs one epoch; the engine and the simulator apply these rules at the boundary
//! (the simulator's checker judges void commands by them).

use crate::types::BlockIndex;

/// First block index of the next epoch when the change is enacted in block `b_star`.
pub fn next_epoch_start(b_star: BlockIndex) -> BlockIndex {
    b_star + 2
}

/// The block whose post-state defines the validator set for index `b`.
pub fn set_source_block(b: BlockIndex) -> BlockIndex {
    b.saturating_sub(2)
}

/// Is an old-epoch checkpoint instance for `index` void given the new epoch starts at `s`?
pub fn ckpt_void(index: BlockIndex, s: BlockIndex) -> bool {
    index >= s
}

/// Is an old-epoch Txs command with fence `after` void given the new epoch starts at `s`?
pub fn txs_void(after: BlockIndex, s: BlockIndex) -> bool {
    after + 1 >= s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary() {
        let s = next_epoch_start(10);
        assert_eq!(s, 12);
        assert_eq!(set_source_block(12), 10);
        assert!(!ckpt_void(11, s) && ckpt_void(12, s));
        assert!(
            !txs_void(10, s) && txs_void(11, s),
            "after = s-1 would land in block s"
        );
    }
}
