//! What a vote or an accepted pre-prepare leads to in one instance (Castro-Liskov's normal
//! case): q matching commits decide (once the value's payload is held), q matching prepares for
//! the value accepted in that view make it prepared and, in the current view, earn our commit.

use super::instance::Instance;
use crate::crypto::Signed;
use crate::types::*;
use crate::wire::{Phase, PreparedCert, VoteBody};

/// The next step of an instance for one (view, value digest).
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// q matching commits and the payload held: decide.
    Decide {
        /// The value.
        value: Value,
        /// q matching commits.
        cert: Vec<Signed<VoteBody>>,
    },
    /// q matching commits, but the value or its payload is missing: ask this voter for the
    /// decision.
    Fetch(ValidatorId),
    /// q matching prepares for the value accepted in this view.
    Prepared {
        /// The certificate, when higher than the one held (to keep and persist).
        cert: Option<PreparedCert>,
        /// Whether to send our commit now (current view, no view change, not sent yet).
        commit: bool,
    },
    /// Nothing yet.
    Wait,
}

/// The step `st` takes for `digest` in `view` with quorum `q`; `holds(cmd)` says whether the
/// payload of command `cmd` is held.
pub fn step(
    st: &Instance,
    view: View,
    digest: &Digest,
    q: usize,
    holds: impl Fn(&CommandId) -> bool,
) -> Step {
    if st.count(view, Phase::Commit, digest) >= q {
        let commits = st.matching(view, Phase::Commit, digest);
        if let Some(value) = st.values.get(digest) {
            let held = match value {
                Value::Noop => true,
                Value::Deps { cmd, .. } => holds(cmd),
            };
            if held {
                let mut cert = commits;
                cert.truncate(q);
                let value = value.clone();
                return Step::Decide { value, cert };
            }
        }
        return commits
            .first()
            .map_or(Step::Wait, |v| Step::Fetch(v.signer));
    }
    let accepted_here = st.accepted_digest.get(&view) == Some(digest);
    if !accepted_here || st.count(view, Phase::Prepare, digest) < q {
        return Step::Wait;
    }
    let higher = st.prepared.as_ref().is_none_or(|c| view > c.view);
    let cert = higher.then(|| {
        let mut votes = st.matching(view, Phase::Prepare, digest);
        votes.truncate(q);
        PreparedCert {
            view,
            value: st.values[digest].clone(),
            votes,
        }
    });
    let commit =
        view == st.view && !st.in_view_change && !st.my_votes.contains_key(&(view, Phase::Commit));
    Step::Prepared { cert, commit }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;

    fn vote(who: u8, phase: Phase, value: &Value) -> Signed<VoteBody> {
        Signed::sign(
            VoteBody {
                epoch: 0,
                inst: InstanceId::Ckpt(1),
                view: 0,
                phase,
                value: value.digest(),
            },
            &[0; 32],
            &InsecureTestCrypto([who; 32]),
        )
    }

    fn deps() -> Value {
        Value::Deps {
            cmd: [5; 32],
            deps: vec![],
            after: 0,
        }
    }

    #[test]
    fn prepares_for_the_accepted_value_earn_one_commit() {
        let value = deps();
        let d = value.digest();
        let mut st = Instance::default();
        st.values.insert(d, value.clone());
        for who in 1..=3 {
            st.add_vote(vote(who, Phase::Prepare, &value));
        }
        assert_eq!(
            step(&st, 0, &d, 3, |_| true),
            Step::Wait,
            "not accepted here"
        );
        st.accepted_digest.insert(0, d);
        let Step::Prepared { cert, commit } = step(&st, 0, &d, 3, |_| true) else {
            panic!("prepared");
        };
        assert!(commit && cert.is_some());
        st.note_prepared(cert.expect("higher"));
        st.in_view_change = true;
        assert_eq!(
            step(&st, 0, &d, 3, |_| true),
            Step::Prepared {
                cert: None,
                commit: false
            },
            "held already, and no commit during a view change"
        );
    }

    #[test]
    fn commits_decide_only_with_the_payload() {
        let value = deps();
        let d = value.digest();
        let mut st = Instance::default();
        for who in 1..=3 {
            st.add_vote(vote(who, Phase::Commit, &value));
        }
        assert_eq!(
            step(&st, 0, &d, 3, |_| true),
            Step::Fetch([1; 32]),
            "value unknown"
        );
        st.values.insert(d, value.clone());
        assert_eq!(step(&st, 0, &d, 3, |_| false), Step::Fetch([1; 32]));
        let Step::Decide { value: v, cert } = step(&st, 0, &d, 3, |_| true) else {
            panic!("decided");
        };
        assert_eq!((v, cert.len()), (value, 3));
        assert_eq!(step(&st, 0, &d, 4, |_| true), Step::Wait, "q = 4");
    }
}
