//! What a replica's outputs do in the simulation: persists, sends, timers, finished blocks
//! (executed on the node's ledger and checked), reports.

use super::*;

impl Sim {
    pub(super) fn apply(&mut self, i: usize, outs: Vec<Output>) {
        let correct = self.is_correct(i);
        let me = self.nodes[i].id;
        let mut sends: Vec<(ValidatorId, Message)> = vec![];
        let ids: Vec<ValidatorId> = match &self.next_epoch {
            Some((m1, _)) if self.nodes[i].epoch == 1 => m1.validators().to_vec(),
            _ => self.membership.validators().to_vec(),
        };
        let epoch = self.nodes[i].epoch;
        let mut switch = false;
        // A pending crash strikes in the first step that both writes and sends, right after
        // one of its writes drawn at random (or, for a crash between writes, in the first such
        // step with two writes or more, before its last one): the writes and events before stay,
        // the rest of the step (its later writes and events, and every message, which the outbox
        // puts after the writes) is lost; a rejoin whose write was kept still takes the chain.
        let writes = outs
            .iter()
            .filter(|o| matches!(o, Output::Persist(_)))
            .count();
        let sends_any = outs.iter().any(|o| matches!(o, Output::Send { .. }));
        let node = &self.nodes[i];
        let mut strike_after = match (node.crash_pending, node.crash_between_writes) {
            (true, false) if writes > 0 && sends_any => Some(self.rng.gen_range(1..=writes)),
            (true, true) if writes > 1 && sends_any => Some(self.rng.gen_range(1..writes)),
            _ => None,
        };
        let mut crash_here = false;
        // Own batches the crash kept from being written: their clients submit them again.
        let mut unwritten: Vec<Vec<Tx>> = vec![];
        let mut outs = outs.into_iter();
        while let Some(o) = outs.next() {
            if strike_after == Some(0) {
                self.nodes[i].crash_pending = false;
                crash_here = true;
                let rest = std::iter::once(o).chain(outs.by_ref());
                let mut lost_write = false;
                for rest in rest {
                    if let (Output::Rejoined { from, to }, false) = (&rest, lost_write) {
                        // The rejoin's write (its block position) was kept: the node's state
                        // is the chain's at `to`, which sync brought and keeps (the engine's
                        // chain is durable; only the event was lost).
                        self.take_over_chain(i, *from, *to);
                    }
                    if let Output::Persist(ops) = rest {
                        lost_write = true;
                        for op in ops {
                            if let StorageOp::Put(Key::OwnBatch(_), Record::Batch(b)) = op {
                                unwritten.push(b.txs.to_vec());
                            }
                        }
                    }
                }
                self.report.lost_writes += usize::from(lost_write);
                break;
            }
            if let (Some(k), Output::Persist(_)) = (strike_after.as_mut(), &o) {
                *k -= 1;
            }
            match o {
                Output::Persist(ops) => {
                    if correct {
                        for op in &ops {
                            if let StorageOp::Put(Key::Reply(_), Record::Reply(r, _)) = op {
                                self.checker.on_reply_created(i, me, &r.body);
                            }
                        }
                    }
                    self.nodes[i].storage.apply(&ops)
                }
                Output::Send { to, msg } => {
                    if correct {
                        self.checker.on_send(i, me, &msg);
                    }
                    match to {
                        Some(t) => sends.push((t, msg)),
                        None => {
                            for t in &ids {
                                if *t != me {
                                    sends.push((*t, msg.clone()));
                                }
                            }
                        }
                    }
                }
                Output::SetTimer { id, after_ms } => self.schedule_timer(i, id, after_ms, false),
                Output::Proposed { id, txs } => {
                    if correct {
                        self.first_proposed.entry(id).or_insert(self.now_us);
                        for tx in txs.iter() {
                            if let Ok(t) = Transfer::decode(&mut &tx.data[..]) {
                                self.proposed_at.entry(t.id).or_insert(self.now_us);
                            }
                        }
                    }
                }
                Output::Committed { inst, value, view } => {
                    if correct && !self.checker.superseded(epoch, &inst) {
                        let payload = match (&inst, &value) {
                            (InstanceId::Cmd { id, .. }, Value::Deps { .. }) => {
                                self.find_payload(id)
                            }
                            _ => None,
                        };
                        self.checker
                            .on_commit(i, inst, &value, view, payload.as_ref());
                        if let (InstanceId::Cmd { proposer, id, .. }, Value::Deps { .. }) =
                            (inst, &value)
                        {
                            if proposer == me {
                                self.report.committed_batches += 1;
                                if let Some(t) = self.first_proposed.get(&id) {
                                    let done = self.node_clock_us(i);
                                    self.report.commit_latency_ms.push((done - t) / 1000);
                                }
                            }
                        }
                    }
                }
                Output::BlockReady(b)
                    if epoch == 0 && self.epoch_start().is_some_and(|s| b.index >= s) =>
                {
                    // Void: the old epoch's replica is replaced before it could build here.
                }
                Output::BlockReady(b) => {
                    let handover = epoch == 0 && self.epoch_start() == Some(b.index + 1);
                    let node = &mut self.nodes[i];
                    let built = self.report.blocks_built.entry(i).or_default();
                    *built += 1;
                    if *built == 1 && !self.membership.contains(&me) {
                        // A validator that joined at the set change built its first block.
                        self.report.joined += 1;
                    }
                    self.report.last_built.insert(i, b.index);
                    let executed = node.ledger.execute(&b);
                    let txs = b.batches.iter().map(|(_, t)| t.len() as u64).sum();
                    self.charge_execution(i, txs);
                    let node = &mut self.nodes[i];
                    if executed.is_ok() {
                        node.last_position = Some(ChainPosition {
                            index: b.index,
                            checkpoint: b.checkpoint,
                            timestamp_ms: node.ledger.time_ms,
                            next_rotation: b.next_rotation.clone(),
                            floors: b.floors.clone(),
                        });
                    }
                    if let Err(e) = executed {
                        if correct {
                            self.checker.violations.push(format!("node {i}: {e}"));
                        }
                    } else if correct {
                        if i == 0 {
                            self.report
                                .block_txs
                                .push((self.node_clock_us(i) / 1000, txs));
                            self.report.checkpoint_views.push((
                                b.index,
                                b.checkpoint_view,
                                self.now_us / 1000,
                            ));
                        }
                        let top = b.floors.iter().map(|(_, f)| *f).max().unwrap_or(0);
                        self.report.max_floor = self.report.max_floor.max(top);
                        let l = self.nodes[i].ledger.clone();
                        self.checker.on_block(i, &b, &l);
                        self.note_client_latency(i, &b);
                        if handover && self.handover_chain.is_none() {
                            let pos = self.nodes[i].last_position.clone();
                            self.handover_chain = pos.map(|p| (l, p));
                        }
                    }
                    switch |= handover;
                }
                Output::Checked { taken, .. } => {
                    if correct {
                        self.report.covered_txs += taken.len() as u64;
                    }
                }
                Output::LandsNowhere { id } => {
                    if correct {
                        self.checker.on_lands_nowhere(i, epoch, id);
                    }
                }
                Output::Misbehaviour(p) => {
                    if correct {
                        self.checker.on_proof(i, &p);
                    }
                }
                Output::Rejoined { from, to } => self.take_over_chain(i, from, to),
            }
        }
        if let Some(adv) = self.nodes[i].adv.as_mut() {
            sends = adv.rewrite(sends, &mut self.rng);
        }
        let pos: BTreeMap<ValidatorId, usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| ids.contains(&n.id))
            .map(|(k, n)| (n.id, k))
            .collect();
        let twin_side = match &self.nodes[i].twin {
            Some(t) if self.now_us < self.cfg.gst_ms * 1000 => t.side.clone(),
            _ => BTreeSet::new(),
        };
        for (to, msg) in sends {
            if let Some(&t) = pos.get(&to) {
                if !twin_side.contains(&t) {
                    self.transmit(i, t, msg);
                }
            }
        }
        if crash_here {
            self.crash_now(i);
            let pending = std::mem::take(&mut self.nodes[i].resubmit);
            self.nodes[i].resubmit = unwritten.into_iter().chain(pending).collect();
        } else if switch {
            self.switch_epoch(i);
        }
    }

    /// Node `i`'s replica rejoined from block `from` at chain block `to`: its ledger becomes
    /// the chain's state at `to` (what block sync brought).
    fn take_over_chain(&mut self, i: usize, from: u64, to: u64) {
        self.report.rejoins.push((i, from, to));
        let node = &mut self.nodes[i];
        match node.fed_chain.remove(&to) {
            Some(l) => {
                node.ledger = l;
                node.fed_chain = node.fed_chain.split_off(&(to + 1));
            }
            None => self
                .checker
                .violations
                .push(format!("node {i} rejoined at block {to}, never fed")),
        }
    }

    /// Record the latency of the transactions of `b` that clients submitted at validator `i`.
    pub(super) fn note_client_latency(&mut self, i: usize, b: &FinishedBlock) {
        for (_, txs) in &b.batches {
            for tx in txs.iter() {
                let Ok(t) = Transfer::decode(&mut &tx.data[..]) else {
                    continue;
                };
                if (t.id >> 40) as usize != i {
                    continue;
                }
                if let Some(at) = self.submitted_at.remove(&t.id) {
                    let done = self.node_clock_us(i);
                    self.report
                        .client_latency_ms
                        .entry(self.region[i])
                        .or_default()
                        .push((done - at) / 1000);
                }
            }
        }
    }

    pub(super) fn find_payload(&self, id: &CommandId) -> Option<SignedBatch> {
        self.payloads.get(id).cloned()
    }

    /// Watch the wire for command batches (announced, or sent with a pre-prepare or a
    /// decision): the checker resolves a committed id to its transactions with them, including
    /// batches no correct replica proposed (a Byzantine proposer's, which never show up as
    /// `Output::Proposed`).
    pub(super) fn note_payloads(&mut self, msg: &Message) {
        let b = match msg {
            Message::Announce(b) => Some(b),
            Message::PrePrepare(_, Some(b)) => Some(b),
            Message::Decided(_, Some(b)) => Some(b),
            _ => None,
        };
        if let Some(b) = b {
            if !b.header.body.is_checkpoint() {
                self.payloads.entry(b.id()).or_insert_with(|| b.clone());
            }
        }
    }
}
