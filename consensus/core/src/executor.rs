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

use crate::types::{CanonicalKey, CommandId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

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
