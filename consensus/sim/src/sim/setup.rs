//! Setting a run up: keys, membership, the network's regions and partitions, the nodes, the
//! adversaries, the first events.

use super::*;

impl Sim {
    /// Set up a run.
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        // A validator that joins at the set change is node n: a node from the start (a full
        // node syncing the chain), a validator from epoch 1 on.
        let joiner = (cfg.epoch_change_at.is_some() && cfg.set_change.adds()).then_some(cfg.n);
        let nodes_total = cfg.n + usize::from(joiner.is_some());
        let signers: Vec<Sr25519Signer> =
            (0..nodes_total).map(Sr25519Signer::for_validator).collect();
        let ids: Vec<ValidatorId> = signers.iter().map(|s| s.public()).collect();
        let mut genesis = [0u8; 32];
        genesis[..8].copy_from_slice(&cfg.seed.to_le_bytes());
        let mut membership = Membership::new(genesis, 0, ids[..cfg.n].to_vec());
        if cfg.leader_based {
            membership = membership.with_fixed_checkpoint_leader();
        }
        let primary = cfg.leader_based.then(|| {
            let p = membership.validators()[0];
            ids.iter()
                .position(|v| *v == p)
                .expect("the primary is a validator; qed")
        });
        let mut core_cfg = Config::new(membership.clone());
        core_cfg.window = cfg.window;
        core_cfg.retain_sync_blocks = cfg.retain_sync_blocks;
        core_cfg.max_batch_txs = cfg.max_batch_txs;
        core_cfg.pacing_target_ms = cfg.pacing_target_ms;
        let t = cfg.core_timeouts();
        core_cfg.recovery_timeout_ms = t.recovery_ms;
        core_cfg.ckpt_timeout_ms = t.ckpt_ms;
        core_cfg.resend_ms = t.resend_ms;
        let verifier = Sr25519Verifier::default();
        let byz_start = cfg.n - cfg.byzantine;
        let byz: BTreeSet<ValidatorId> = ids[byz_start..cfg.n].iter().copied().collect();
        let supply = cfg.accounts as u64 * 1_000;
        let checker = Checker::new(
            membership.clone(),
            Box::new(verifier.clone()),
            cfg.window,
            byz,
            supply,
        );
        let mut nodes = Vec::new();
        for (i, s) in signers.into_iter().enumerate() {
            let is_byz = i >= byz_start && i < cfg.n;
            let adv = if is_byz {
                Some(Adversary::new(
                    cfg.behaviour,
                    std::sync::Arc::new(s.clone()),
                    &membership,
                    cfg.window,
                    &mut rng,
                ))
            } else {
                None
            };
            let skew_ms = if is_byz && cfg.behaviour == Behaviour::TimestampAhead {
                600_000
            } else {
                0
            };
            nodes.push(Node {
                id: s.public(),
                signer: s,
                verifier: verifier.for_node(),
                usage: Usage::default(),
                replica: None,
                storage: MemStorage::default(),
                ledger: Ledger::genesis(cfg.accounts, 1_000),
                adv,
                inc: 0,
                crashed_for_good: false,
                resubmit: Vec::new(),
                last_position: None,
                fed_chain: BTreeMap::new(),
                twin: None,
                crash_pending: false,
                crash_between_writes: false,
                skew_ms,
                next_tx: 0,
                submitted: vec![],
                epoch: 0,
                retired: false,
                sent: BTreeMap::new(),
            });
        }
        collude(&mut nodes);
        let region = (0..nodes_total).map(|i| i % 5).collect();
        let mut partitioned = BTreeSet::new();
        if cfg.partition && cfg.n >= 4 && cfg.gst_ms > 0 {
            let k = rng.gen_range(1..=membership.f().max(1));
            while partitioned.len() < k {
                partitioned.insert(rng.gen_range(0..cfg.n));
            }
        }
        let mut sim = Sim {
            cfg: cfg.clone(),
            rng,
            now_us: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            events: BTreeMap::new(),
            nodes,
            membership,
            core_cfg,
            verifier,
            checker,
            partitioned,
            region,
            report: Report {
                seed: cfg.seed,
                primary_region: primary.map(|p| p % 5),
                ..Default::default()
            },
            first_proposed: BTreeMap::new(),
            proposed_at: BTreeMap::new(),
            payloads: BTreeMap::new(),
            height_at_gst: BTreeMap::new(),
            primary,
            submitted_at: BTreeMap::new(),
            forwarded: vec![],
            next_epoch: None,
            handover_chain: None,
        };
        if let Some(b_star) = cfg.epoch_change_at {
            let leaving = cfg.set_change.removes().then(|| ids[cfg.n - 1]);
            let m1_ids: Vec<ValidatorId> = ids
                .iter()
                .copied()
                .filter(|v| Some(*v) != leaving)
                .collect();
            let m1 = Membership::new(genesis, 1, m1_ids);
            let mut c1 = sim.core_cfg.clone();
            c1.membership = m1.clone();
            let start = epoch::next_epoch_start(b_star);
            sim.checker.begin_epoch(m1.clone(), start);
            sim.next_epoch = Some((m1, c1));
        }
        // Crash schedule among correct validators (lowest indices first after 0 stays up).
        let (count, restart) = match cfg.crash {
            CrashMode::None => (0, false),
            CrashMode::Crash(c) => (c, false),
            CrashMode::CrashRestart(c) => (c, true),
        };
        let correct = cfg.n - cfg.byzantine;
        for k in 0..count.min(correct.saturating_sub(1)) {
            let node = correct - 1 - k;
            let at = sim
                .rng
                .gen_range(cfg.load_ms / 4..cfg.load_ms.max(cfg.load_ms / 4 + 1));
            let at = cfg.crash_at_ms.unwrap_or(at);
            sim.schedule(at * 1000, Ev::Crash { node });
            if restart {
                let down = sim.rng.gen_range(200..MAX_OUTAGE_MS);
                let down = cfg.outage_ms.unwrap_or(down);
                sim.schedule((at + down) * 1000, Ev::Restart { node });
            } else {
                sim.nodes[node].crashed_for_good = true;
            }
        }
        if cfg.behaviour == Behaviour::Twins {
            for i in byz_start..cfg.n {
                let mut others: Vec<usize> = (0..cfg.n).filter(|k| *k != i).collect();
                for k in (1..others.len()).rev() {
                    let j = sim.rng.gen_range(0..=k);
                    others.swap(k, j);
                }
                let side: BTreeSet<usize> = others[..others.len() / 2].iter().copied().collect();
                let node = &sim.nodes[i];
                let replica = Replica::new(
                    sim.core_cfg.clone(),
                    &MemStorage::default(),
                    Box::new(node.signer.clone()),
                    Box::new(sim.verifier.clone()),
                );
                sim.nodes[i].twin = Some(Twin {
                    replica,
                    storage: MemStorage::default(),
                    side,
                    inc: 0,
                });
            }
        }
        for i in 0..nodes_total {
            if Some(i) != joiner {
                sim.boot(i);
                sim.feed_twin_start(i);
            }
            let off = sim.rng.gen_range(0..cfg.batch_interval_ms.max(1));
            sim.schedule(off * 1000, Ev::Load { node: i });
            let off = sim.rng.gen_range(0..50);
            sim.schedule((cfg.block_ms + off) * 1000, Ev::Due { node: i });
            if sim.nodes[i].adv.is_some() {
                sim.schedule(300_000, Ev::AdvTick { node: i });
            }
        }
        sim
    }
}

/// Give every Byzantine validator's mutator the keys of all Byzantine validators.
pub(super) fn collude(nodes: &mut [Node]) {
    let keys: Vec<crate::crypto::SharedSigner> = nodes
        .iter()
        .filter(|n| n.adv.is_some())
        .map(|n| std::sync::Arc::new(n.signer.clone()) as crate::crypto::SharedSigner)
        .collect();
    for n in nodes.iter_mut() {
        if let Some(m) = n.adv.as_mut().and_then(|a| a.mutator.as_mut()) {
            m.set_allies(keys.iter().cloned());
        }
    }
}
