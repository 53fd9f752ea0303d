//! Garbage collection after a block (protocol.md, "Garbage collection"): what a finished block
//! lets the replica forget.
//!
//! The rules here read the read-only [`Ctx`] and say what to collect; they change nothing.
//! `replica/collect.rs` hands each item to the services that hold state for it, and each
//! forgets its own (the instances, the conflict log, the batches, execution, the proposer).
//! The decided record ([`crate::decided`]) is what makes collection safe: an entry is collected
//! only once it is known decided, and every later message about it is answered from the record.

use crate::ctx::Ctx;
use crate::types::{BlockIndex, CommandId, DepKind, InstanceId, Seq, Tx, ValidatorId};
use std::collections::BTreeSet;

/// A command `(proposer, seq, id)` some service still holds.
pub type CommandRef = (ValidatorId, Seq, CommandId);

/// The commands below the agreed floors that are not committed, so in no block now or later:
/// the floor decides them (every message about them is dropped), and each is collected so that
/// no log entry below a floor pins its proposer's window. They are looked for wherever a
/// service keeps one: the single-shot instances (`instances`), the conflict log and the
/// batches held.
pub fn below_floors<'a>(
    ctx: &Ctx,
    instances: impl Iterator<Item = &'a InstanceId>,
) -> BTreeSet<CommandRef> {
    let below = |p: &ValidatorId, seq: Seq, id: &CommandId| {
        seq < ctx.record.floor(p) && !ctx.committed.contains(id)
    };
    let mut refs = BTreeSet::new();
    for inst in instances {
        if let InstanceId::Cmd { proposer, seq, id } = inst {
            if below(proposer, *seq, id) {
                refs.insert((*proposer, *seq, *id));
            }
        }
    }
    for e in ctx.dds.entries() {
        if let DepKind::Txs { seq } = e.dep.kind {
            if below(&e.dep.proposer, seq, &e.dep.id) {
                refs.insert((e.dep.proposer, seq, e.dep.id));
            }
        }
    }
    for (id, batch) in ctx.payloads.iter() {
        let h = &batch.header.body;
        if !h.is_checkpoint() && below(&h.proposer, h.seq, id) {
            refs.insert((h.proposer, h.seq, *id));
        }
    }
    refs
}

/// Our own batches among `refs` (the batch held under that exact seq), whose transactions go
/// back to the pool, lowest seq first. A copy already in a block is skipped by every builder.
pub fn own_to_requeue(ctx: &Ctx, refs: &BTreeSet<CommandRef>) -> Vec<(Seq, Vec<Tx>)> {
    refs.iter()
        .filter(|(proposer, _, _)| *proposer == ctx.me)
        .filter_map(|(_, seq, id)| {
            let batch = ctx.payloads.get(id)?;
            let h = &batch.header.body;
            (h.proposer == ctx.me && h.seq == *seq).then(|| (*seq, batch.txs.to_vec()))
        })
        .collect()
}

/// What collecting one command instance removes besides its consensus state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandGarbage {
    /// The command's id.
    pub id: CommandId,
    /// Whether the instance owns what is keyed by its id (the reply, the log entry, the batch,
    /// the commit, the proposer's collection). A misnamed instance (a real id under another proposer or seq, a Byzantine
    /// validator's invention) owns only its own consensus state.
    pub owns_id: bool,
    /// Our own batch record's seq, if the instance is our own real batch: an instance naming
    /// our seq with an id we never proposed must not delete the record of the real batch at
    /// that seq, or a restart would reuse the seq.
    pub own_batch_seq: Option<Seq>,
}

/// What collecting command instance `inst` removes, judged now (None for a checkpoint).
pub fn command_garbage(ctx: &Ctx, inst: &InstanceId) -> Option<CommandGarbage> {
    let InstanceId::Cmd { id, seq, .. } = inst else {
        return None;
    };
    let owns_id = !ctx.misnamed(inst);
    let own_batch = ctx
        .held_ref(id)
        .is_some_and(|r| r.proposer == ctx.me && r.instance() == *inst);
    Some(CommandGarbage {
        id: *id,
        owns_id,
        own_batch_seq: own_batch.then_some(*seq),
    })
}

/// The first block whose checkpoint, finished block and instances are kept after block `b`:
/// `retain_blocks` back, for laggards catching up.
pub fn keep_from(b: BlockIndex, retain_blocks: u64) -> BlockIndex {
    b.saturating_sub(retain_blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::testing::{command, World};

    fn cmd(r: &CommandRef) -> InstanceId {
        InstanceId::Cmd {
            proposer: r.0,
            seq: r.1,
            id: r.2,
        }
    }

    #[test]
    fn only_uncommitted_commands_below_a_floor_are_collected_and_ours_go_back_to_the_pool() {
        let mut w = World::new();
        let me = w.me;
        let (ours, theirs, at_floor, committed) = (
            command(1, 2, 1),
            command(2, 1, 2),
            command(2, 4, 3),
            command(3, 0, 4),
        );
        for c in [&ours, &theirs, &at_floor, &committed] {
            w.payloads.insert(c.clone());
        }
        // A command only the conflict log holds (we replied to it; its batch is gone).
        let logged = command(3, 1, 5);
        w.dds.reply(&logged.header.body, &[0; 32], &w.crypto);
        w.committed.insert(committed.clone(), vec![], 0);
        w.record.raise_floor(me, 3);
        w.record.raise_floor([2; 32], 4);
        w.record.raise_floor([3; 32], 4);
        // Instances only single-shot holds: one for a command no one holds a batch of, one
        // naming our batch's id under a seq it does not have.
        let stray = cmd(&([2; 32], 0, [9; 32]));
        let renamed = cmd(&(me, 1, ours.id()));
        let refs = below_floors(&w.ctx(), [stray, renamed].iter());
        assert_eq!(
            refs,
            BTreeSet::from([
                (me, 1, ours.id()),
                (me, 2, ours.id()),
                ([2; 32], 0, [9; 32]),
                ([2; 32], 1, theirs.id()),
                ([3; 32], 1, logged.id()),
            ]),
            "not the one at its floor, not the committed one"
        );
        assert_eq!(
            own_to_requeue(&w.ctx(), &refs),
            vec![(2, ours.txs.to_vec())],
            "only our own batch, once, under the seq it was proposed at"
        );
    }

    #[test]
    fn a_real_id_under_another_name_owns_nothing_of_the_real_command() {
        let mut w = World::new();
        let ours = command(1, 4, 1);
        w.payloads.insert(ours.clone());
        let real = cmd(&(w.me, 4, ours.id()));
        assert_eq!(
            command_garbage(&w.ctx(), &real),
            Some(CommandGarbage {
                id: ours.id(),
                owns_id: true,
                own_batch_seq: Some(4),
            })
        );
        let misnamed = cmd(&([2; 32], 4, ours.id()));
        assert_eq!(
            command_garbage(&w.ctx(), &misnamed),
            Some(CommandGarbage {
                id: ours.id(),
                owns_id: false,
                own_batch_seq: None,
            }),
            "a Byzantine validator's name for our batch deletes none of it"
        );
        let invented = cmd(&(w.me, 4, [7; 32]));
        assert_eq!(
            command_garbage(&w.ctx(), &invented).map(|g| g.own_batch_seq),
            Some(None),
            "an id we never proposed at our seq keeps our batch record"
        );
        let theirs = command(2, 4, 2);
        w.payloads.insert(theirs.clone());
        assert_eq!(
            command_garbage(&w.ctx(), &cmd(&([2; 32], 4, theirs.id()))),
            Some(CommandGarbage {
                id: theirs.id(),
                owns_id: true,
                own_batch_seq: None,
            }),
            "another validator's batch at the same seq is not ours to delete"
        );
        assert_eq!(command_garbage(&w.ctx(), &InstanceId::Ckpt(3)), None);
        assert_eq!(keep_from(10, 4), 6);
        assert_eq!(keep_from(2, 4), 0);
    }
}
