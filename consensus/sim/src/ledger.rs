//! A toy balances ledger executing finished blocks, so that conservation (S8), at-most-once
//! application (S6) and per-account order (S4) can be checked.
//!
//! A transaction is `SCALE(Transfer)`; its access set is `[acct(from), acct(to)]` sorted, or
//! [`GLOBAL`] for a "mint-burn" no-op that the runtime would not understand. Execution is
//! deterministic: a transfer whose id was already applied, or whose sender lacks funds, is
//! skipped by the same rule everywhere.

use bsmr_consensus_core::{hash, AccountId, Digest, FinishedBlock, Tx, GLOBAL};
use codec::{Decode, Encode};
use std::collections::{BTreeMap, BTreeSet};

/// A toy transfer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Transfer {
    /// Globally unique transaction id.
    pub id: u64,
    /// Sender account index.
    pub from: u32,
    /// Recipient account index.
    pub to: u32,
    /// Amount.
    pub amount: u64,
    /// Treat as a GLOBAL-access call.
    pub global: bool,
}

/// The account key of an account index.
pub fn acct(i: u32) -> AccountId {
    let mut a = [0u8; 32];
    a[..4].copy_from_slice(&i.to_be_bytes());
    a
}

impl Transfer {
    /// As an opaque transaction with its declared access set.
    pub fn to_tx(&self) -> Tx {
        let access = if self.global {
            vec![GLOBAL]
        } else {
            let mut a = vec![acct(self.from), acct(self.to)];
            a.sort();
            a.dedup();
            a
        };
        Tx {
            access,
            data: self.encode(),
        }
    }
}

/// One replica's ledger.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Balances.
    pub balances: BTreeMap<u32, u64>,
    /// Applied transaction ids.
    pub applied: BTreeSet<u64>,
    /// Transaction ids seen in blocks (applied or skipped).
    pub included: BTreeSet<u64>,
    /// Per-account sequence of applied tx ids.
    pub order: BTreeMap<u32, Vec<u64>>,
    /// Height executed.
    pub height: u64,
    /// Chain time (max(prev + 1, K_b.timestamp)).
    pub time_ms: u64,
    /// Duplicate applications detected (S6; must stay 0).
    pub double_applied: u64,
}

impl Ledger {
    /// Genesis with `accounts` accounts of `each` units.
    pub fn genesis(accounts: u32, each: u64) -> Self {
        Ledger {
            balances: (0..accounts).map(|a| (a, each)).collect(),
            ..Default::default()
        }
    }
    /// Total supply.
    pub fn total(&self) -> u64 {
        self.balances.values().sum()
    }
    /// State root.
    pub fn root(&self) -> Digest {
        hash(
            &(
                self.height,
                self.time_ms,
                self.balances.iter().collect::<Vec<_>>(),
            )
                .encode(),
        )
    }
    /// Execute a finished block. Returns Err if the block is not the next height.
    pub fn execute(&mut self, b: &FinishedBlock) -> Result<(), String> {
        if b.index != self.height + 1 {
            return Err(format!(
                "block {} executed at height {}",
                b.index, self.height
            ));
        }
        self.height = b.index;
        self.time_ms = (self.time_ms + 1).max(b.timestamp_ms);
        for (_, txs) in &b.batches {
            for tx in txs.iter() {
                let Ok(t) = Transfer::decode(&mut &tx.data[..]) else {
                    continue;
                };
                self.included.insert(t.id);
                if self.applied.contains(&t.id) {
                    continue;
                }
                if t.global {
                    if !self.applied.insert(t.id) {
                        self.double_applied += 1;
                    }
                    continue;
                }
                let bal = self.balances.get(&t.from).copied().unwrap_or(0);
                if bal < t.amount || !self.balances.contains_key(&t.to) {
                    continue;
                }
                *self.balances.get_mut(&t.from).expect("checked; qed") -= t.amount;
                *self.balances.get_mut(&t.to).expect("checked; qed") += t.amount;
                if !self.applied.insert(t.id) {
                    self.double_applied += 1;
                }
                self.order.entry(t.from).or_default().push(t.id);
                if t.to != t.from {
                    self.order.entry(t.to).or_default().push(t.id);
                }
            }
        }
        Ok(())
    }
}
