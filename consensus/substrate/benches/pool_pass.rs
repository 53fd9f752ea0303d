//! The proposal policy's pass over the ready set (`PoolProposer::next_batches`), the largest
//! piece of CPU this project owns at saturation (docs/performance.md, "Both modes under one
//! profile"). Every validator runs it each time it may propose, over the whole ready set.
//!
//! The steady state at saturation: 4,096 ready transactions (the default `--rpc-backlog-limit`)
//! from 1,024 senders, 4 nonces each, every one seen by earlier passes; a quarter submitted
//! here and already in this validator's batches, the rest other validators' clients', not yet
//! due for a takeover. The pass walks all of them and proposes nothing.
//!
//! `cargo bench -p sc-consensus-bsmr --bench pool_pass`

use bsmr_consensus_core::Membership;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sc_consensus_bsmr::{
    config::Mode,
    pool_proposer::{PoolProposer, ProposerConfig, Turn},
    TxInfo,
};
use sp_core::H256;

const SENDERS: u32 = 1_024;
const NONCES: u32 = 4;

/// Transaction `n` of sender `s`: bytes (s, n), hash from both.
fn tx(s: u32, n: u32) -> (H256, Vec<u8>) {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&s.to_le_bytes());
    h[4..8].copy_from_slice(&n.to_le_bytes());
    h[31] = 1;
    let mut bytes = s.to_le_bytes().to_vec();
    bytes.extend(n.to_le_bytes());
    (H256(h), bytes)
}

fn classify(b: &[u8]) -> Option<TxInfo> {
    let mut sender = [0u8; 32];
    sender[..4].copy_from_slice(&b[..4]);
    let mut to = sender;
    to[31] = 1;
    Some(TxInfo {
        sender,
        access: vec![sender, to],
    })
}

fn pass(c: &mut Criterion) {
    let members = Membership::new([0; 32], 0, (1..=4u8).map(|i| [i; 32]).collect());
    let ready: Vec<(H256, Vec<u8>)> = (0..SENDERS)
        .flat_map(|s| (0..NONCES).map(move |n| tx(s, n)))
        .collect();
    let here = |h: &H256| h.0[0].is_multiple_of(4);
    let turn = |now| Turn {
        now,
        me: [1; 32],
        membership: &members,
        primary: [1; 32],
        finalized: 0,
        core_pending: 0,
        round_trip_ms: 0,
        submitted_here: &here,
        waited_here: &|_| None,
    };
    let cfg = ProposerConfig {
        mode: Mode::Leaderless,
        owner_delay_ms: 2_000,
        anyone_delay_ms: 6_000,
        max_batch_txs: 512,
        max_inflight_batches: 0,
    };
    let warmed = || {
        let mut p = PoolProposer::new(cfg.clone());
        let first = p.next_batches(
            ready.iter().map(|(h, b)| (*h, || b.clone())),
            classify,
            &turn(1_000),
        );
        assert!(!first.is_empty(), "our clients' transactions are proposed");
        p
    };
    c.bench_function("next_batches, 4,096 ready, steady state", |b| {
        b.iter_batched_ref(
            warmed,
            |p| {
                let batches = p.next_batches(
                    ready.iter().map(|(h, b)| (*h, || b.clone())),
                    classify,
                    &turn(1_100),
                );
                assert!(batches.is_empty(), "nothing new to propose");
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, pass);
criterion_main!(benches);
