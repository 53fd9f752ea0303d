//! A member that has been silent for a checkpoint timeout gets no full timeout on top: the
//! view-0 timer of a batch it proposed fires from the moment it fell silent, while a batch of a
//! member heard from recently gets the usual recovery timeout. A member never heard from keeps
//! the full view-0 timeout; in later views it counts as heard when we started. Later views keep
//! their back-off unless their leader is silent already.
use bsmr_consensus_core::crypto::Signed;
use bsmr_consensus_core::*;
use codec::Encode;

const GENESIS: [u8; 32] = [9; 32];

fn batch(proposer: u8) -> SignedBatch {
    let txs = vec![Tx {
        data: vec![proposer; 8],
        access: vec![[proposer; 32]],
    }];
    let header = BatchHeader {
        epoch: 0,
        proposer: [proposer; 32],
        seq: 0,
        base: [0; 32],
        kind: BatchKind::Txs,
        access: vec![[proposer; 32]],
        txs_root: hash(&txs.encode()),
        weight: txs.encoded_size() as u64,
    };
    SignedBatch {
        header: Signed::sign(header, &GENESIS, &InsecureTestCrypto([proposer; 32])),
        txs,
    }
}

/// The view-0 timer the replica arms for `b`'s instance when `from` announces `b` at `now`.
fn view_timer(r: &mut Replica, now: u64, from: ValidatorId, b: SignedBatch) -> u64 {
    let id = b.id();
    r.handle(
        now,
        Input::Message {
            from,
            msg: Message::Announce(b),
        },
    )
    .into_iter()
    .find_map(|o| match o {
        Output::SetTimer {
            id: TimerId::View(InstanceId::Cmd { id: i, .. }, 0),
            after_ms,
        } if i == id => Some(after_ms),
        _ => None,
    })
    .expect("the announced batch gets a view timer")
}

/// Validator 1 of a 4-member set, started at time 0, and its configuration.
fn replica() -> (Replica, Config) {
    let me = [1u8; 32];
    let cfg = Config::new(Membership::new(
        GENESIS,
        0,
        vec![me, [2; 32], [3; 32], [4; 32]],
    ));
    let r = Replica::new(
        cfg.clone(),
        &MemStorage::default(),
        Box::new(InsecureTestCrypto(me)),
        Box::new(InsecureTestCrypto(me)),
    );
    (r, cfg)
}

/// `from` sends something every 500 ms up to `until`; the others stay silent.
fn chatter(r: &mut Replica, from: ValidatorId, until: u64) {
    for now in (0..=until).step_by(500) {
        let _ = r.handle(
            now,
            Input::Message {
                from,
                msg: Message::SyncRequest(1_000),
            },
        );
    }
}

#[test]
fn a_silent_proposers_batch_is_recovered_from_when_it_fell_silent() {
    let (mut r, cfg) = replica();
    let (t_rec, silence) = (cfg.recovery_timeout_ms, cfg.ckpt_timeout_ms);
    let _ = r.start(0);
    // 4 speaks once at the start and falls silent; 2 keeps talking; 3 says nothing.
    chatter(&mut r, [4; 32], 0);
    chatter(&mut r, [2; 32], 10_000);
    assert_eq!(
        view_timer(&mut r, 10_000, [2; 32], batch(2)),
        t_rec,
        "a member heard from keeps the full recovery timeout"
    );
    // 3 was never heard from, and its own announce is news from it: the full timeout too.
    assert_eq!(view_timer(&mut r, 10_000, [3; 32], batch(3)), t_rec);
    // A batch of 4 relayed by 2 (4 silent for 10 s): recovered at once.
    let after = view_timer(&mut r, 10_000, [2; 32], batch(4));
    assert!(
        after < t_rec && after <= 10_000u64.saturating_sub(silence).max(100),
        "a batch of a member silent for {silence} ms waits {after} ms"
    );
}

/// The view-1 timer the replica arms when the view-0 timer of `inst` expires at `now`.
fn next_view_timer(r: &mut Replica, now: u64, inst: InstanceId) -> u64 {
    r.handle(now, Input::Timer(TimerId::View(inst, 0)))
        .into_iter()
        .find_map(|o| match o {
            Output::SetTimer {
                id: TimerId::View(i, 1),
                after_ms,
            } if i == inst => Some(after_ms),
            _ => None,
        })
        .expect("the view change arms a view-1 timer")
}

fn instance(b: &SignedBatch) -> InstanceId {
    InstanceId::Cmd {
        proposer: b.header.body.proposer,
        seq: b.header.body.seq,
        id: b.id(),
    }
}

#[test]
fn a_later_view_whose_leader_is_silent_too_is_left_at_once() {
    let (mut r, cfg) = replica();
    let (t_rec, m) = (cfg.recovery_timeout_ms, &cfg.membership);
    let _ = r.start(0);
    // 3 proposes; the leader of its instance's view 1 is 4. Both speak at the start and fall
    // silent; 2 relays 3's batch.
    assert_eq!(m.leader_cmd(&[3; 32], 0), [3; 32]);
    assert_eq!(m.leader_cmd(&[3; 32], 1), [4; 32]);
    chatter(&mut r, [3; 32], 0);
    chatter(&mut r, [4; 32], 0);
    chatter(&mut r, [2; 32], 10_000);
    let b = batch(3);
    let inst = instance(&b);
    let first = view_timer(&mut r, 10_000, [2; 32], b);
    assert!(first < t_rec, "view 0 of a silent proposer is cut short");
    // View 0 expires: view 1's leader is silent as well, so waiting out its doubled timer
    // would only delay the next leader (f silent leaders in a row would cost
    // base * (2^(f+1) - 1)).
    let next = next_view_timer(&mut r, 10_000 + first, inst);
    assert!(
        next < t_rec,
        "the view of a leader silent for 10 s lasts {next} ms"
    );
}

#[test]
fn a_later_view_whose_leader_is_live_keeps_its_back_off() {
    let (mut r, cfg) = replica();
    let t_rec = cfg.recovery_timeout_ms;
    let _ = r.start(0);
    // 3 proposes and falls silent; view 1's leader 4 keeps talking: its view gets the doubled
    // timer (capping it would let a slow view-change round cycle through views without end).
    chatter(&mut r, [3; 32], 0);
    chatter(&mut r, [4; 32], 10_000);
    let b = batch(3);
    let inst = instance(&b);
    let first = view_timer(&mut r, 10_000, [4; 32], b);
    assert!(first < t_rec);
    assert_eq!(next_view_timer(&mut r, 10_000 + first, inst), 2 * t_rec);
}

#[test]
fn a_member_never_heard_from_keeps_the_full_view_0_timeout() {
    let (mut r, cfg) = replica();
    let _ = r.start(0);
    // 4 has said nothing in the 10 s since our start: at a network's start it may not be up,
    // connected or caught up yet, so nothing says it fell silent.
    chatter(&mut r, [2; 32], 10_000);
    assert_eq!(
        view_timer(&mut r, 10_000, [2; 32], batch(4)),
        cfg.recovery_timeout_ms
    );
}

#[test]
fn a_later_view_of_a_leader_never_heard_from_counts_from_our_start() {
    let (mut r, cfg) = replica();
    let t_rec = cfg.recovery_timeout_ms;
    let _ = r.start(0);
    // 3 proposes and falls silent; view 1's leader 4 never said a word in the 10 s since our
    // start (a silent Byzantine validator, or one that crashed before we came up).
    chatter(&mut r, [3; 32], 0);
    chatter(&mut r, [2; 32], 10_000);
    let b = batch(3);
    let inst = instance(&b);
    let first = view_timer(&mut r, 10_000, [2; 32], b);
    let next = next_view_timer(&mut r, 10_000 + first, inst);
    assert!(
        next < t_rec,
        "view 1 of a leader unheard since our start 10 s ago lasts {next} ms"
    );
}
