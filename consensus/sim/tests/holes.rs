//! Single, validly signed messages of kinds the first scripted adversaries never sent: each
//! behaviour here halted the chain, lost committed commands or got a correct validator accused
//! before its fix (docs/consensus.md, "Validity at the door").
use bsmr_sim::{run, Behaviour, SimConfig};

/// The scenario a soak seed drew when it failed (before fuzz cases also drew validator-set
/// changes, from a stream of their own).
fn soak_case(seed: u64) -> SimConfig {
    let mut c = bsmr_sim::fuzz::case(seed);
    c.epoch_change_at = None;
    c
}

/// Each soak seed's scenario runs with no violation.
fn soak_seeds_pass(seeds: &[u64]) {
    for seed in seeds {
        passes(*seed, soak_case(*seed));
    }
}

/// Seed `seed`'s scenario `c` runs with no violation.
fn passes(seed: u64, c: SimConfig) {
    let r = run(c.clone());
    assert!(
        r.violations.is_empty(),
        "seed {seed} ({}): {:?}",
        bsmr_sim::fuzz::describe(&c),
        r.violations
    );
}

/// `behaviour` at f Byzantine validators for n in `ns` and every seed: no violation of any
/// invariant or liveness bound, no proof against a correct validator, and every transaction a
/// correct validator accepted in a block.
fn no_harm(behaviour: Behaviour, ns: &[usize], seeds: std::ops::Range<u64>) {
    let mut failures = vec![];
    for &n in ns {
        let f = (n - 1) / 3;
        for seed in seeds.clone() {
            let mut c = SimConfig::ci(n, seed);
            c.byzantine = f;
            c.behaviour = behaviour;
            let r = run(c);
            let accused_correct = r.proofs.keys().any(|k| *k < n - f);
            if !r.violations.is_empty() || accused_correct || r.min_height == 0 {
                failures.push(format!(
                    "n={n} seed={seed}: {:?} proofs {:?} heights {}..{}\n  replay: cargo run --release -p bsmr-sim -- --validators {n} --byzantine {f} --behaviour {} --seed {seed} --gst-ms 800 --load-ms 1500 --batch-interval-ms 400 --txs-per-batch 2",
                    r.violations,
                    r.proofs,
                    r.min_height,
                    r.max_height,
                    behaviour.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// H2: a dependency at a seq no window reaches, in a checkpoint's reply quorum, was armed,
/// never decided, and block building waited for it forever.
#[test]
fn dependencies_beyond_every_window_do_not_halt_the_chain() {
    no_harm(Behaviour::FarDeps, &[4, 7], 0..8);
}

/// H2: a dependency on a proposer outside the set was taken into a checkpoint and never
/// decided (view changes for it are dropped).
#[test]
fn dependencies_on_outsiders_are_invalid() {
    no_harm(Behaviour::OutsiderDeps, &[4, 7], 0..8);
}

/// H1: a real batch id under another (proposer, seq) made correct voters accuse a correct
/// recovery leader, or a Noop for the misnamed instance collected the real command's commit.
#[test]
fn a_real_id_under_another_name_loses_nothing_and_accuses_nobody() {
    no_harm(Behaviour::MisnamedDeps, &[4, 7], 0..8);
}

/// Equivocation under sustained load: every block waited a view-0 timeout for the equivocated
/// twin in its checkpoint, correct proposers' windows filled, and their transactions starved
/// (2,132 of 7,200 in blocks in the 30 s run). Twins in a decided checkpoint now go to
/// a view change at once, and a recovery leader proposes Noop for an equivocated slot.
#[test]
fn equivocation_under_sustained_load_does_not_starve_correct_proposers() {
    for seed in [4242, 4243] {
        let mut c = SimConfig::small(4, seed);
        c.byzantine = 1;
        c.behaviour = Behaviour::Equivocate;
        c.load_ms = 10_000;
        c.batch_interval_ms = 50;
        c.end_ms = 40_000;
        let r = run(c);
        assert!(
            r.violations.is_empty(),
            "seed {seed}: {:?} ({} of {} transactions in blocks)\n  replay: cargo run --release -p bsmr-sim -- --validators 4 --byzantine 1 --behaviour equivocate --load-ms 10000 --end-ms 40000 --batch-interval-ms 50 --seed {seed}",
            r.violations,
            r.txs_in_blocks,
            r.txs_submitted
        );
    }
}

/// Soak seeds that failed before the fix they led to (docs/consensus.md, "Watermarks over an
/// equivocating proposer's Noop'd seqs"): 100607 (mutate; two correct groups' watermarks of the
/// Byzantine proposer drifted apart, no checkpoint quorum), 201803 and 203230 (a correct
/// proposer's command decided Noop while nobody else held its header: the others' watermark of it
/// stuck, and they stopped replying to its later batches); 102638, 207265 and 213187 (n = 13
/// with the 4 Byzantine validators consecutive in the leader rotation: each Byzantine leader's
/// view was waited out on a doubling timer although its invalid proposal had been reported, so
/// the 60-s run ended before the next correct leader's view; now a replica that convicts the
/// leader of its current view asks for the next view at once).
#[test]
fn soak_seeds_that_failed_before_their_fix() {
    soak_seeds_pass(&[100_607, 201_803, 203_230, 102_638, 207_265, 213_187]);
}

/// Soak seeds where a replica partitioned before GST was left behind for good (n = 9-13,
/// retention of 4-8 finished blocks, blocks at consensus speed): its settled question named a
/// chain head its peers had passed by more blocks than they kept, so nobody answered. Peers now
/// keep the batch references of the last `SETTLED_ANSWER_BLOCKS` blocks to answer it.
#[test]
fn soak_seeds_where_a_partitioned_replica_could_not_rejoin() {
    soak_seeds_pass(&[102_973, 201_444, 207_747, 212_100]);
}

/// Soak seeds that stalled on leaders that say nothing (n = 13): 202410 and 209808 (three
/// silent Byzantine validators and a crashed one, or four crashed, in a row in the checkpoint
/// rotation: each of their views was waited out on a doubled timer, 4 + 8 + 16 + 32 s), 200614
/// (`mutate` with three crashes, the same on a Byzantine proposer's recovered batch). A view
/// whose leader has been silent for a checkpoint timeout now lasts `SILENT_VIEW_MS`.
#[test]
fn soak_seeds_with_silent_leaders_in_a_row() {
    soak_seeds_pass(&[202_410, 209_808, 200_614]);
}

/// Soak seed 213425 (n = 13, one `mutate` validator, three crashed): the mutator's votes and
/// view changes named real ids under other proposers' seqs, every correct replica armed a timer
/// for each and decided it Noop, about 90 per slot, until the event budget ran out (2.8 million
/// messages in 13 virtual seconds). A replica now drives only what it has its own reason to.
#[test]
fn soak_seed_where_made_up_ids_each_got_a_consensus_round() {
    soak_seeds_pass(&[213_425]);
}

/// Soak seed 804520 (n = 5, one `mutate` validator, window 4): the Byzantine proposer showed its
/// seq-1 and seq-2 batches to one correct replica only. The other three decided them Noop
/// without the header, so the decisions did not count and their watermark of that proposer
/// stayed at 1 while the fourth's reached 21. A low-watermark checkpoint leader then dropped
/// the fourth's reply (dependencies beyond its reach) and the fourth refused the others'
/// floors: no checkpoint from block 27 on. A decided command's header now travels with its
/// decision, and a replica asks for the headers its watermark waits on.
#[test]
fn soak_seed_where_one_replica_alone_held_the_headers_of_decided_commands() {
    soak_seeds_pass(&[804_520]);
}

/// Soak seeds 1006175, 1009538 and 1011579 (n = 7, two `mutate` validators, window 4): blocks
/// kept coming but the last transactions missed the liveness deadline. On 3c2f06b every replica
/// broadcast a fetch for each uncountable decision near every proposer's watermark on each
/// resend, and every peer answered with a certificate; the mutators had that much more to
/// replay. A replica now asks about the seq at the watermark only, one peer per id, in turn.
#[test]
fn soak_seeds_slowed_by_asking_every_peer_for_headers() {
    soak_seeds_pass(&[1_006_175, 1_009_538, 1_011_579]);
}

/// Soak seed 3123660 (n = 7, two `mutate` validators, window 4, retention 4): each correct
/// proposer's 27 batches went through its window four at a time, one window per checkpoint
/// cycle slowed by the Byzantine checkpoint leaders, so its last batches were proposed about
/// 50 s in and could not be in blocks by the deadline counted from the end of the load. The
/// liveness bound is per batch, from GST or its proposal, whichever is later (docs/consensus.md,
/// "Liveness bound"): the run goes on to the last such deadline, and they are in blocks by 64 s.
#[test]
fn soak_seed_where_batches_waited_for_their_proposers_window() {
    soak_seeds_pass(&[3_123_660]);
}

/// Soak seed 3531356 (n = 4, no Byzantine validator, one crash, WAN, GST at 1.1 s): one replica
/// timed out alone on the crashed proposer's batch 3, before the others had any reason to care
/// about it, and went on through views 1, 2 and 3 by itself. When the checkpoint that needs the
/// batch brought the other two in, they reached view 2 while it sat in view 3, and view 3 while
/// it had gone on to view 4: never three in one view, so block 1 waited past the run's end. A
/// view's timer now counts only once q replicas asked for that view (Castro-Liskov's rule).
#[test]
fn soak_seed_where_a_replica_raced_through_views_alone() {
    soak_seeds_pass(&[3_531_356]);
}

/// Soak seed 3701256 (n = 13, a `withhold-payload` validator, two crash-restarts between a
/// persist and its send, a validator-set change at block 2): at the epoch switch validator 11
/// was handed its six unfinished transactions again, two client batches in a row; it crashed
/// while proposing the first, and the simulator fed the second to the dead node, where it
/// vanished. Not a protocol fault: the harness now keeps a client batch that reaches a node
/// that is down for the client to submit again at restart, as a real client would.
#[test]
fn soak_seed_where_the_simulator_fed_a_client_batch_to_a_crashed_node() {
    let mut c = bsmr_sim::fuzz::case(3_701_256);
    assert!(
        c.epoch_change_at.is_some(),
        "the scenario has its set change"
    );
    c.set_change = bsmr_sim::SetChange::Remove;
    passes(3_701_256, c);
}
