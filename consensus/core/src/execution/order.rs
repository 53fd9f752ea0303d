//! Execution order inside a block (protocol.md, "Execution and blocks").
//!
//! Given the block's members and their committed dependencies, the order is: `c` before `d` iff
//! `c ∈ deps*(d)` and `d ∉ deps*(c)`, where `deps*` only follows paths whose nodes are all
//! members (edges to non-members are ignored: local knowledge differs between replicas).
//! Strongly connected components come from an ITERATIVE Tarjan (no recursion, so no stack
//! overflow on long chains); the condensation is ordered by Kahn's algorithm with a min-heap keyed
//! by each component's smallest canonical key; inside a component members go by canonical key.
//! Neither Tarjan's emission order nor any hash order reaches the output, so any two replicas
//! with the same members and the same committed deps produce the same sequence, whatever the
//! order in which they learned the commits (property-tested below).

use crate::floors::voids;
use crate::types::{BlockIndex, CanonicalKey, CommandId, DepKind, DepRef, Floors};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// The outcome of cutting block b.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cut {
    /// A dependency of K_b above the floors is not known decided yet.
    Wait,
    /// The block's Txs members (unordered), and the committed dependencies it voids (their
    /// fence names b, their seq is below their proposer's floor).
    Ready {
        /// Members.
        members: BTreeSet<CommandId>,
        /// Voided.
        voided: BTreeSet<CommandId>,
    },
}

/// Which Txs commands block b holds (protocol.md, "Execution and blocks", with the agreed floors
/// of docs/consensus.md): K_b's dependencies with `after == b - 1`, except those below
/// their proposer's floor in K_b, which are void. Nothing below the floors is waited for;
/// every other dependency must be known decided (`decided`). `committed` answers for commands
/// committed with a value. Local knowledge enters only through `decided` and `committed`, which
/// agree on every correct replica once they answer; the floors are agreed.
pub fn cut(
    b: BlockIndex,
    deps: &[DepRef],
    floors: &Floors,
    decided: impl Fn(&DepRef) -> bool,
    committed: impl Fn(&DepRef) -> Option<BlockIndex>,
) -> Cut {
    let below_floor = |d: &DepRef| voids(floors, d);
    if !deps.iter().all(|d| below_floor(d) || decided(d)) {
        return Cut::Wait;
    }
    let mut members = BTreeSet::new();
    let mut voided = BTreeSet::new();
    for d in deps {
        if !matches!(d.kind, DepKind::Txs { .. }) || committed(d).map(|a| a + 1) != Some(b) {
            continue;
        }
        if below_floor(d) {
            voided.insert(d.id);
        } else {
            members.insert(d.id);
        }
    }
    Cut::Ready { members, voided }
}

/// A block member: its canonical key and its committed dependencies (any ids; non-members are
/// ignored).
#[derive(Clone, Debug)]
pub struct Member {
    /// Canonical key.
    pub key: CanonicalKey,
    /// Committed dependencies.
    pub deps: Vec<CommandId>,
}

/// Strongly connected components of the member graph (edges to non-members dropped), each as
/// a sorted list of node indices (indices into `adj`). Iterative Tarjan.
pub fn tarjan_scc(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let n = adj.len();
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let mut out = Vec::new();
    // Call stack frames: (node, next edge position).
    let mut frames: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        frames.push((root, 0));
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut ei)) = frames.last_mut() {
            if *ei < adj[v].len() {
                let w = adj[v][*ei];
                *ei += 1;
                if index[w] == UNVISITED {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    frames.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                frames.pop();
                if let Some(&(parent, _)) = frames.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    loop {
                        let w = stack
                            .pop()
                            .expect("v is on the stack until popped here; qed");
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    comp.sort_unstable();
                    out.push(comp);
                }
            }
        }
    }
    out
}

/// The canonical linearization of a block's members.
pub fn canonical_order(members: &BTreeMap<CommandId, Member>) -> Vec<CommandId> {
    // Node numbering follows canonical key order so that index order == key order.
    let mut by_key: Vec<(&CanonicalKey, &CommandId)> =
        members.iter().map(|(id, m)| (&m.key, id)).collect();
    by_key.sort();
    let ids: Vec<CommandId> = by_key.iter().map(|(_, id)| **id).collect();
    let pos: BTreeMap<CommandId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let adj: Vec<Vec<usize>> = ids
        .iter()
        .map(|id| {
            let mut e: Vec<usize> = members[id]
                .deps
                .iter()
                .filter_map(|d| pos.get(d).copied())
                .collect();
            e.sort_unstable();
            e.dedup();
            e
        })
        .collect();
    let comps = tarjan_scc(&adj);
    let mut comp_of = vec![0usize; ids.len()];
    for (ci, c) in comps.iter().enumerate() {
        for &v in c {
            comp_of[v] = ci;
        }
    }
    // Condensation: comp A depends on comp B (B must come first).
    let mut waiting_on: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); comps.len()];
    let mut dependents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); comps.len()];
    for (v, es) in adj.iter().enumerate() {
        for &w in es {
            let (a, b) = (comp_of[v], comp_of[w]);
            if a != b {
                waiting_on[a].insert(b);
                dependents[b].insert(a);
            }
        }
    }
    // Smallest node index == smallest canonical key (comps are sorted).
    let min_key = |c: usize| comps[c][0];
    let mut indeg: Vec<usize> = waiting_on.iter().map(|s| s.len()).collect();
    let mut heap: BinaryHeap<Reverse<(usize, usize)>> = BinaryHeap::new();
    for (c, d) in indeg.iter().enumerate() {
        if *d == 0 {
            heap.push(Reverse((min_key(c), c)));
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    while let Some(Reverse((_, c))) = heap.pop() {
        out.extend(comps[c].iter().map(|&v| ids[v]));
        for &d in &dependents[c] {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                heap.push(Reverse((min_key(d), d)));
            }
        }
    }
    debug_assert_eq!(out.len(), ids.len(), "the condensation is a DAG; qed");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    fn key(i: u8) -> CanonicalKey {
        CanonicalKey {
            epoch: 0,
            proposer: [i % 4; 32],
            seq: i as u64,
            id: [i; 32],
        }
    }

    fn txs_dep(proposer: u8, seq: u64, id: u8) -> DepRef {
        DepRef {
            proposer: [proposer; 32],
            kind: DepKind::Txs { seq },
            id: [id; 32],
        }
    }

    /// The floor-gap scenario of docs/consensus.md ("Agreed floors"): a Byzantine proposer 9 got
    /// seq 5 decided twice, id 50 as Noop (everyone saw it) and id 51 committed for block 3
    /// (replica A saw it, replica B never heard of it). B's own watermark for 9 is far past 5.
    /// Under the old local floor B counted 51 as decided and built block 3 without it, A with
    /// it. With agreed floors both wait or both void it.
    #[test]
    fn replicas_that_know_different_things_cut_the_same_block_or_wait() {
        let deps = vec![txs_dep(9, 5, 51), txs_dep(1, 0, 10)];
        let a_decided = |d: &DepRef| d.id == [51; 32] || d.id == [10; 32];
        let a_committed = |d: &DepRef| (d.id == [51; 32] || d.id == [10; 32]).then_some(2);
        let b_decided = |d: &DepRef| d.id == [10; 32];
        let b_committed = |d: &DepRef| (d.id == [10; 32]).then_some(2);
        // Floor of 9 at or below 5: B waits for 51's decision instead of building without it.
        let floors = vec![([9; 32], 5)];
        let a = cut(3, &deps, &floors, a_decided, a_committed);
        assert_eq!(
            a,
            Cut::Ready {
                members: BTreeSet::from([[10; 32], [51; 32]]),
                voided: BTreeSet::new()
            }
        );
        assert_eq!(cut(3, &deps, &floors, b_decided, b_committed), Cut::Wait);
        // Floor of 9 above 5: 51 is void on both, and both cut the same block.
        let floors = vec![([9; 32], 6)];
        let a = cut(3, &deps, &floors, a_decided, a_committed);
        let b = cut(3, &deps, &floors, b_decided, b_committed);
        assert_eq!(
            a,
            Cut::Ready {
                members: BTreeSet::from([[10; 32]]),
                voided: BTreeSet::from([[51; 32]])
            }
        );
        assert_eq!(
            b,
            Cut::Ready {
                members: BTreeSet::from([[10; 32]]),
                voided: BTreeSet::new()
            },
            "B voids nothing it holds, and its block has the same members"
        );
    }

    #[test]
    fn a_member_lands_only_in_the_block_its_fence_names() {
        let deps = vec![txs_dep(1, 0, 10), txs_dep(2, 0, 20)];
        let later = |d: &DepRef| Some(if d.id == [10; 32] { 2 } else { 3 });
        assert_eq!(
            cut(3, &deps, &vec![], |_| true, later),
            Cut::Ready {
                members: BTreeSet::from([[10; 32]]),
                voided: BTreeSet::new()
            }
        );
    }

    fn graph(edges: &[(u8, u8)], n: u8) -> BTreeMap<CommandId, Member> {
        let mut m = BTreeMap::new();
        for i in 0..n {
            m.insert(
                [i; 32],
                Member {
                    key: key(i),
                    deps: vec![],
                },
            );
        }
        for (a, b) in edges {
            m.get_mut(&[*a; 32]).unwrap().deps.push([*b; 32]);
        }
        m
    }

    #[test]
    fn chain_goes_dependencies_first() {
        let g = graph(&[(0, 1), (1, 2)], 3);
        assert_eq!(canonical_order(&g), vec![[2; 32], [1; 32], [0; 32]]);
    }

    #[test]
    fn cycle_goes_by_key_and_nonmembers_ignored() {
        let mut g = graph(&[(0, 2), (2, 1), (1, 0), (3, 0)], 4);
        g.get_mut(&[0; 32]).unwrap().deps.push([99; 32]);
        assert_eq!(
            canonical_order(&g),
            vec![[0; 32], [1; 32], [2; 32], [3; 32]]
        );
    }

    #[test]
    fn long_chain_no_stack_overflow() {
        let n = 200_000u32;
        let adj: Vec<Vec<usize>> = (0..n as usize)
            .map(|i| {
                if i + 1 < n as usize {
                    vec![i + 1]
                } else {
                    vec![]
                }
            })
            .collect();
        assert_eq!(tarjan_scc(&adj).len(), n as usize);
        let ring: Vec<Vec<usize>> = (0..n as usize)
            .map(|i| vec![(i + 1) % n as usize])
            .collect();
        assert_eq!(tarjan_scc(&ring).len(), 1);
    }

    fn arb_graph() -> impl Strategy<Value = (u8, Vec<(u8, u8)>)> {
        (1u8..24).prop_flat_map(|n| (Just(n), proptest::collection::vec((0..n, 0..n), 0..64)))
    }

    proptest! {
        /// Any two replicas given the same committed graph in any arrival order produce the same
        /// block order, and the order respects one-way dependencies.
        #[test]
        fn order_independent_of_arrival((n, edges) in arb_graph(), seed in any::<u64>()) {
            let g = graph(&edges, n);
            let reference = canonical_order(&g);
            // Re-insert members and their deps in a shuffled arrival order.
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut items: Vec<(CommandId, Member)> = g.clone().into_iter().collect();
            items.shuffle(&mut rng);
            let mut g2 = BTreeMap::new();
            for (id, mut m) in items {
                m.deps.shuffle(&mut rng);
                g2.insert(id, m);
            }
            prop_assert_eq!(&canonical_order(&g2), &reference);
            prop_assert_eq!(reference.len(), n as usize);
            // One-way dependency => dependency first.
            let at: BTreeMap<CommandId, usize> = reference.iter().enumerate().map(|(i, c)| (*c, i)).collect();
            let comps = {
                let ids: Vec<CommandId> = reference.clone();
                let _ = ids;
                // reachability by DFS
                let reach = |s: CommandId| {
                    let mut seen = BTreeSet::new();
                    let mut st = vec![s];
                    while let Some(x) = st.pop() {
                        for d in &g[&x].deps { if g.contains_key(d) && seen.insert(*d) { st.push(*d); } }
                    }
                    seen
                };
                g.keys().map(|k| (*k, reach(*k))).collect::<BTreeMap<_, _>>()
            };
            for (c, rc) in &comps {
                for d in rc {
                    if !comps[d].contains(c) {
                        prop_assert!(at[d] < at[c], "dependency must come first");
                    }
                }
            }
        }
    }
}
