//! The pre-prepare's encoding. Its proof is q signed replies, and each reply lists the
//! instance's dependencies (up to W per proposer): derived SCALE would repeat every dependency in
//! every reply, O(n^2) references per pre-prepare and O(n^3) bytes for its broadcast, which is
//! what filled the uplinks of a 31-validator set in the simulator (docs/consensus.md, "The
//! pre-prepare's proof, once per dependency").
//!
//! Here the dependencies the replies name go once, sorted, in a table, and each reply lists
//! indices into it. Nothing else changes: a decoded body equals the one encoded, each reply's
//! signature still covers its own [`ReplyBody`] (SCALE as derived), and the pre-prepare's
//! signature covers this encoding of its body. Decoding is strict, so each body has one
//! encoding: the table must be sorted without repeats, every entry named by some reply, every
//! index inside it, and the references the replies name together at most
//! [`MAX_PROOF_DEP_REFS`], so a small message cannot expand into a large proof.

use super::{PrePrepareBody, ReplyBody, ViewChangeBody};
use crate::crypto::Signed;
use crate::types::*;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use codec::{Compact, Decode, Encode, Error, Input, Output};

/// Most dependency references one pre-prepare's replies may name together. A reply may name W
/// batches of every proposer and [`crate::validity::MAX_CKPT_REFS`] candidates, so the runtime's
/// largest set, 128 validators, makes quorums of 86 replies naming 86 x (128 x 16 + 64) =
/// 181,632. Each reference takes at least one byte of input and decodes into one `DepRef`, so
/// a body never decodes into more than about 80 bytes per byte of its encoding, nor, whatever it
/// claims, into more than about 21 MB.
pub const MAX_PROOF_DEP_REFS: usize = 1 << 18;

impl Encode for PrePrepareBody {
    fn encode_to<T: Output + ?Sized>(&self, dest: &mut T) {
        self.epoch.encode_to(dest);
        self.inst.encode_to(dest);
        self.view.encode_to(dest);
        self.value.encode_to(dest);
        let mut table: BTreeMap<&DepRef, u32> = self
            .proof
            .iter()
            .flat_map(|r| r.body.deps.iter())
            .map(|d| (d, 0))
            .collect();
        for (i, slot) in table.values_mut().enumerate() {
            *slot = i as u32;
        }
        Compact(table.len() as u32).encode_to(dest);
        for d in table.keys() {
            d.encode_to(dest);
        }
        Compact(self.proof.len() as u32).encode_to(dest);
        for r in &self.proof {
            r.body.epoch.encode_to(dest);
            r.body.cmd.encode_to(dest);
            r.body.pos.encode_to(dest);
            Compact(r.body.deps.len() as u32).encode_to(dest);
            for d in &r.body.deps {
                // The table was built from these very dependencies.
                Compact(table.get(d).copied().unwrap_or_default()).encode_to(dest);
            }
            r.body.fence.encode_to(dest);
            r.signer.encode_to(dest);
            r.sig.encode_to(dest);
        }
        self.new_view.encode_to(dest);
    }
}

impl Decode for PrePrepareBody {
    fn decode<I: Input>(input: &mut I) -> Result<Self, Error> {
        let epoch = Epoch::decode(input)?;
        let inst = InstanceId::decode(input)?;
        let view = View::decode(input)?;
        let value = Value::decode(input)?;
        let mut table = Table::read(input)?;
        let proof = read_replies(input, &mut table, true)?;
        table.all_named()?;
        let new_view = Vec::<Signed<ViewChangeBody>>::decode(input)?;
        Ok(PrePrepareBody {
            epoch,
            inst,
            view,
            value,
            proof,
            new_view,
        })
    }
}

/// One body's dependency table as it is read: sorted without repeats, the entries the replies
/// have named so far, and how many references they named together.
struct Table {
    entries: Vec<DepRef>,
    named: Vec<bool>,
    refs: usize,
}

impl Table {
    fn read<I: Input>(input: &mut I) -> Result<Self, Error> {
        let entries = Vec::<DepRef>::decode(input)?;
        if !entries.windows(2).all(|w| w[0] < w[1]) {
            return Err("pre-prepare: dependency table not sorted or repeats".into());
        }
        Ok(Table {
            named: alloc::vec![false; entries.len()],
            entries,
            refs: 0,
        })
    }

    /// A reply names `count` references: refused, before any is read, past the bound for all
    /// replies together.
    fn expect(&mut self, count: usize) -> Result<(), Error> {
        self.refs = self.refs.saturating_add(count);
        if self.refs > MAX_PROOF_DEP_REFS {
            return Err("pre-prepare: proof names too many dependencies".into());
        }
        Ok(())
    }

    /// The entry the next index names.
    fn entry<I: Input>(&mut self, input: &mut I) -> Result<DepRef, Error> {
        let i = Compact::<u32>::decode(input)?.0 as usize;
        let d = self
            .entries
            .get(i)
            .ok_or("pre-prepare: dependency index outside the table")?;
        self.named[i] = true;
        Ok(*d)
    }

    fn all_named(&self) -> Result<(), Error> {
        if self.named.contains(&false) {
            return Err("pre-prepare: a table entry no reply names".into());
        }
        Ok(())
    }
}

/// Read a body's replies against its table. With `build` false nothing is kept: the same
/// grammar and checks, for a body that must not be expanded yet ([`walk_body`]).
fn read_replies<I: Input>(
    input: &mut I,
    table: &mut Table,
    build: bool,
) -> Result<Vec<Signed<ReplyBody>>, Error> {
    let replies = Compact::<u32>::decode(input)?.0;
    let mut proof = Vec::new();
    for _ in 0..replies {
        let epoch = Epoch::decode(input)?;
        let cmd = DepRef::decode(input)?;
        let pos = u64::decode(input)?;
        let count = Compact::<u32>::decode(input)?.0 as usize;
        table.expect(count)?;
        let mut deps = Vec::new();
        for _ in 0..count {
            let d = table.entry(input)?;
            if build {
                deps.push(d);
            }
        }
        let fence = BlockIndex::decode(input)?;
        let signer = ValidatorId::decode(input)?;
        let sig = Signature::decode(input)?;
        if build {
            proof.push(Signed {
                body: ReplyBody {
                    epoch,
                    cmd,
                    pos,
                    deps,
                    fence,
                },
                signer,
                sig,
            });
        }
    }
    Ok(proof)
}

/// Where a walked body's fields lie in its encoding.
#[derive(Debug)]
pub(crate) struct WalkedBody<'a> {
    /// The body's epoch (its first field).
    pub epoch: Epoch,
    /// Its instance and view, as encoded.
    pub slot: &'a [u8],
    /// Its value, as encoded.
    pub value: &'a [u8],
    /// The whole body, as encoded.
    pub bytes: &'a [u8],
}

/// Walk one encoded body in place without building its proof: everything
/// [`PrePrepareBody::decode`] checks (so a body walked is a body that decodes, to these very
/// bytes), but no reply is kept. A reported pre-prepare's signature is checked over the bytes
/// walked before anything expands them ([`crate::misbehaviour::ReportedProof`]).
pub(crate) fn walk_body<'a>(input: &mut &'a [u8]) -> Result<WalkedBody<'a>, Error> {
    let start = *input;
    let taken = |input: &&'a [u8], from: &'a [u8]| &from[..from.len() - input.len()];
    let epoch = Epoch::decode(input)?;
    let at = *input;
    InstanceId::decode(input)?;
    View::decode(input)?;
    let slot = taken(input, at);
    let at = *input;
    Value::decode(input)?;
    let value = taken(input, at);
    let mut table = Table::read(input)?;
    read_replies(input, &mut table, false)?;
    table.all_named()?;
    Vec::<Signed<ViewChangeBody>>::decode(input)?;
    Ok(WalkedBody {
        epoch,
        slot,
        value,
        bytes: taken(input, start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;
    use crate::testkit::txs_dep as dep;
    use crate::wire::{decode_message, encode_message, Message};

    fn reply(by: u8, deps: Vec<DepRef>) -> Signed<ReplyBody> {
        let body = ReplyBody {
            epoch: 1,
            cmd: dep(1, 7),
            pos: u64::from(by),
            deps,
            fence: 3,
        };
        Signed::sign(body, &[0; 32], &InsecureTestCrypto([by; 32]))
    }

    fn body(proof: Vec<Signed<ReplyBody>>) -> PrePrepareBody {
        PrePrepareBody {
            epoch: 1,
            inst: dep(1, 7).instance(),
            view: 0,
            value: Value::Noop,
            proof,
            new_view: vec![],
        }
    }

    /// Every proposer of `n` with `per` batches each.
    fn all_deps(n: u8, per: Seq) -> Vec<DepRef> {
        let mut v: Vec<DepRef> = (1..=n)
            .flat_map(|p| (0..per).map(move |s| dep(p, s)))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_body_decodes_to_itself_and_its_signatures_still_verify() {
        let shared = all_deps(4, 5);
        // Replies that overlap, one empty, and one (Byzantine) unsorted with a repeat: the
        // encoding keeps each list as it was signed.
        let mut odd = vec![shared[3], shared[0], shared[3]];
        odd.push(dep(9, 1));
        let b = body(vec![
            reply(1, shared.clone()),
            reply(2, shared[..7].to_vec()),
            reply(3, vec![]),
            reply(4, odd),
        ]);
        let back = PrePrepareBody::decode(&mut &b.encode()[..]).expect("decodes");
        assert_eq!(back, b);
        for r in &back.proof {
            assert!(r.verify(&[0; 32], &InsecureTestCrypto([0; 32])));
        }
        let leader = InsecureTestCrypto([1; 32]);
        let m = Message::PrePrepare(Signed::sign(b, &[0; 32], &leader), None);
        let decoded = decode_message(&encode_message(&m)).expect("decodes");
        assert_eq!(decoded, m);
        let Message::PrePrepare(p, _) = decoded else {
            unreachable!()
        };
        assert!(p.verify(&[0; 32], &leader), "the leader's signature holds");
    }

    #[test]
    fn a_walk_checks_what_decoding_checks_and_ends_where_it_ends() {
        // 124 table entries (indices from 64 take two bytes), a NewView, and a byte after.
        let deps = all_deps(31, 4);
        let mut b = body(vec![reply(1, deps.clone()), reply(2, deps[60..].to_vec())]);
        b.value = Value::Deps {
            cmd: [7; 32],
            deps: deps.clone(),
            after: 3,
        };
        b.new_view = vec![Signed::sign(
            ViewChangeBody {
                epoch: 1,
                inst: b.inst,
                new_view: 0,
                prepared: None,
                has_payload: true,
            },
            &[0; 32],
            &InsecureTestCrypto([3; 32]),
        )];
        let mut bytes = b.encode();
        bytes.push(0xab);
        let mut input = &bytes[..];
        let walked = walk_body(&mut input).expect("walks");
        assert_eq!(input, &[0xab], "ends where the body ends");
        assert_eq!(walked.bytes, &b.encode()[..]);
        assert_eq!(walked.epoch, b.epoch);
        assert_eq!(walked.slot, &(b.inst, b.view).encode()[..]);
        assert_eq!(walked.value, &b.value.encode()[..]);
        let mut input = &bytes[..];
        assert_eq!(PrePrepareBody::decode(&mut input), Ok(b));
        assert_eq!(input, &[0xab], "as decoding does");
    }

    #[test]
    fn each_dependency_of_a_quorum_goes_once() {
        // n = 31: a quorum of 21 replies naming the same 31 x 16 dependencies.
        let deps = all_deps(31, 16);
        let b = body((1..=21).map(|i| reply(i, deps.clone())).collect());
        let each_in_each: usize = b.proof.iter().map(|r| r.encoded_size()).sum();
        let size = b.encoded_size();
        assert!(
            size * 10 < each_in_each,
            "{size} bytes against {each_in_each} with every reply's list in full"
        );
        assert!(size > deps.encoded_size(), "the table itself goes once");
    }

    /// A body with one reply whose dependencies are `indices` into `table`, encoded by hand.
    fn raw(table: &[DepRef], indices: &[u32]) -> Vec<u8> {
        let b = body(vec![]);
        let mut out = Vec::new();
        (b.epoch, b.inst, b.view, b.value).encode_to(&mut out);
        table.to_vec().encode_to(&mut out);
        Compact(1u32).encode_to(&mut out);
        let r = reply(2, vec![]);
        (r.body.epoch, r.body.cmd, r.body.pos).encode_to(&mut out);
        Compact(indices.len() as u32).encode_to(&mut out);
        for i in indices {
            Compact(*i).encode_to(&mut out);
        }
        (r.body.fence, r.signer, r.sig).encode_to(&mut out);
        Vec::<Signed<ViewChangeBody>>::new().encode_to(&mut out);
        out
    }

    #[test]
    fn only_the_one_encoding_of_a_body_decodes() {
        let (a, b) = (dep(1, 1), dep(2, 1));
        let ok = raw(&[a, b], &[1, 0, 1]);
        let decoded = PrePrepareBody::decode(&mut &ok[..]).expect("well formed");
        assert_eq!(decoded.proof[0].body.deps, vec![b, a, b]);
        assert_eq!(decoded.encode(), ok, "the canonical form");
        for (why, bytes, error) in [
            ("unsorted table", raw(&[b, a], &[0, 1]), "not sorted"),
            ("repeated entry", raw(&[a, a], &[0, 1]), "not sorted"),
            ("entry no reply names", raw(&[a, b], &[0]), "no reply names"),
            (
                "index outside the table",
                raw(&[a, b], &[0, 1, 2]),
                "outside",
            ),
        ] {
            let err = PrePrepareBody::decode(&mut &bytes[..]).expect_err(why);
            assert!(err.to_string().contains(error), "{why}: {err}");
            let err = walk_body(&mut &bytes[..]).expect_err(why);
            assert!(err.to_string().contains(error), "walked, {why}: {err}");
        }
        // A table without replies names nothing.
        let mut empty = Vec::new();
        let b0 = body(vec![]);
        (b0.epoch, b0.inst, b0.view, &b0.value, vec![a]).encode_to(&mut empty);
        (Compact(0u32), Vec::<Signed<ViewChangeBody>>::new()).encode_to(&mut empty);
        let err = PrePrepareBody::decode(&mut &empty[..]).unwrap_err();
        assert!(err.to_string().contains("no reply names"), "{err}");
        let err = walk_body(&mut &empty[..]).unwrap_err();
        assert!(err.to_string().contains("no reply names"), "walked: {err}");
        // A body without a proof has an empty table.
        assert_eq!(PrePrepareBody::decode(&mut &b0.encode()[..]), Ok(b0));
    }

    #[test]
    fn the_bound_counts_the_references_of_all_replies_together() {
        let d = dep(1, 1);
        let per = MAX_PROOF_DEP_REFS / 4;
        let at_bound = body((1..=4).map(|i| reply(i, vec![d; per])).collect());
        let bytes = at_bound.encode();
        assert_eq!(
            PrePrepareBody::decode(&mut &bytes[..]),
            Ok(at_bound),
            "exactly the bound"
        );
        assert!(
            walk_body(&mut &bytes[..]).is_ok(),
            "walked, exactly the bound"
        );
        let over = body((1..=5).map(|i| reply(i, vec![d; per])).collect()).encode();
        let err = PrePrepareBody::decode(&mut &over[..]).unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
        let err = walk_body(&mut &over[..]).unwrap_err();
        assert!(err.to_string().contains("too many"), "walked: {err}");
    }

    #[test]
    fn a_few_bytes_cannot_claim_a_huge_proof() {
        // One table entry, and a reply claiming more references than the bound: refused before
        // any is read (a valid message of these few bytes would otherwise expand 73-fold).
        let mut bytes = raw(&[dep(1, 1)], &[0]);
        let b = body(vec![]);
        let head = (b.epoch, b.inst, b.view, b.value, vec![dep(1, 1)]).encoded_size()
            + Compact(1u32).encoded_size()
            + (1u64, dep(1, 7), 2u64).encoded_size();
        let claim = Compact((MAX_PROOF_DEP_REFS + 1) as u32).encode();
        bytes.splice(head..head + 1, claim);
        let err = PrePrepareBody::decode(&mut &bytes[..]).unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
    }
}
