//! The simulated validator-set change: a node switches to epoch 1 at block s - 1 (as the
//! engine's `switch_epoch`) and proposes its void and queued transactions again; a validator
//! that leaves hands its clients' transactions to a member, and one that joins (a node that
//! followed the chain) starts its replica from the chain at s - 1.

use super::*;

impl Sim {
    /// The core configuration of the epoch node `i` runs.
    pub(super) fn core_cfg_of(&self, i: usize) -> Config {
        match &self.next_epoch {
            Some((_, c1)) if self.nodes[i].epoch == 1 => c1.clone(),
            _ => self.core_cfg.clone(),
        }
    }

    /// The block index epoch 1 starts at, when a set change is configured.
    pub(super) fn epoch_start(&self) -> Option<BlockIndex> {
        self.cfg.epoch_change_at.map(epoch::next_epoch_start)
    }

    /// Replace node `i`'s epoch-0 replica by one for epoch 1 (as the engine's `switch_epoch`),
    /// taking the chain at block s - 1 if it is behind it.
    pub(super) fn switch_epoch(&mut self, i: usize) {
        let (Some(s), Some((m1, _)), Some((chain, pos))) = (
            self.epoch_start(),
            self.next_epoch.clone(),
            self.handover_chain.clone(),
        ) else {
            return;
        };
        let joining = !self.membership.contains(&self.nodes[i].id);
        let node = &mut self.nodes[i];
        if node.epoch > 0 || (node.replica.is_none() && !joining) {
            return;
        }
        node.epoch = 1;
        self.report.epoch_switches += 1;
        self.checker.node_in_epoch(i, 1);
        node.fed_chain.clear();
        if node.ledger.height < s - 1 {
            node.ledger = chain;
            node.last_position = Some(pos.clone());
        }
        let again: Vec<(u64, Tx)> = node
            .sent
            .iter()
            .filter(|(id, _)| !node.ledger.included.contains(id))
            .map(|(id, t)| (*id, t.clone()))
            .collect();
        if !m1.contains(&node.id) {
            node.retired = true;
            node.replica = None;
            node.adv = None;
            // Its pool's transactions reach a member of the new set, which proposes them.
            let to = (0..self.nodes.len())
                .find(|k| {
                    *k != i
                        && self.is_correct(*k)
                        && !self.nodes[*k].crashed_for_good
                        && m1.contains(&self.nodes[*k].id)
                })
                .expect("a correct member stays; qed");
            for (id, t) in &again {
                self.nodes[to].sent.insert(*id, t.clone());
            }
            if self.nodes[to].epoch == 1 {
                self.propose_again(to, again);
            }
            return;
        }
        let mut storage = MemStorage::default();
        storage.apply(&[StorageOp::Put(
            Key::Meta,
            Record::Meta(storage::Meta {
                fence: s - 1,
                next_pos: 0,
                built: s - 1,
                built_ckpt: pos.checkpoint,
                built_ts: pos.timestamp_ms,
                next_rotation: pos.next_rotation.clone(),
                built_floors: pos.floors.clone(),
            }),
        )]);
        node.storage = storage.clone();
        // A Twins validator that stays gets a second epoch-1 replica too, from the same chain
        // position, on the same side of the network.
        let twin = node.twin.take().map(|t| (t.side, t.inc + 1));
        if node.adv.is_some() {
            node.adv = Some(Adversary::new(
                self.cfg.behaviour,
                std::sync::Arc::new(node.signer.clone()),
                &m1,
                self.cfg.window,
                &mut self.rng,
            ));
        }
        super::setup::collude(&mut self.nodes);
        // Epoch 1's configuration and the storage just seeded.
        self.boot(i);
        if let Some((side, inc)) = twin {
            let replica = Replica::new(
                self.core_cfg_of(i),
                &storage,
                Box::new(self.nodes[i].signer.clone()),
                Box::new(self.verifier.clone()),
            );
            self.report.twin_epoch_switches += 1;
            self.nodes[i].twin = Some(Twin {
                replica,
                storage,
                side,
                inc,
            });
            self.feed_twin_start(i);
        }
        self.propose_again(i, again);
    }

    /// Hand transactions to node `i`'s replica again, a client batch at a time.
    pub(super) fn propose_again(&mut self, i: usize, txs: Vec<(u64, Tx)>) {
        let txs: Vec<Tx> = txs.into_iter().map(|(_, t)| t).collect();
        for chunk in txs.chunks(self.cfg.txs_per_batch.max(1)) {
            self.feed(i, Input::ClientBatch(chunk.to_vec()));
        }
    }
}
