//! Placement: which node should own a repo, by rendezvous (highest random weight) hashing.
//!
//! Every node scores every repo with a hash of (node id, tenant, graph), and the highest score
//! wins. A node that joins takes about 1/(N+1) of the repos, a little from every node; a node
//! that leaves gives up only its own, each to the node that scored second. Nothing is stored
//! and no node needs to agree with another beyond the list of members it sees.
//!
//! The hash is fixed: 64-bit FNV-1a over length-prefixed fields, finished by the SplitMix64
//! mixer. It has no seed and no dependence on the platform or the build, so that every node of
//! every version computes the same owner.
//!
//! Placement only says which node *should* take a repo's free writer lease; the lease in
//! object storage stays the truth, and a held lease is honoured until it is released or expires.

use crate::RepoKey;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The weight of `node` for `key`: the node with the highest weight owns the repo.
pub fn score(node: &str, key: &RepoKey) -> u64 {
    let mut hash = FNV_OFFSET;
    for field in [node, key.tenant.as_str(), key.graph.as_str()] {
        // The length first, so that ("ab", "c") and ("a", "bc") differ.
        for byte in (field.len() as u64)
            .to_le_bytes()
            .iter()
            .chain(field.as_bytes())
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    mix(hash)
}

/// SplitMix64's finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The node that should own `key` among `nodes` (their ids); `None` when there is none.
/// Equal weights, astronomically unlikely, go to the smaller id.
pub fn owner<'a, N: AsRef<str>>(nodes: &'a [N], key: &RepoKey) -> Option<&'a N> {
    nodes
        .iter()
        .max_by(|a, b| by_weight(a.as_ref(), b.as_ref(), key))
}

/// `nodes` from the owner of `key` down: the order in which they should take it over.
pub fn ranked<'a, N: AsRef<str>>(nodes: &'a [N], key: &RepoKey) -> Vec<&'a N> {
    let mut ranked: Vec<&N> = nodes.iter().collect();
    ranked.sort_by(|a, b| by_weight(b.as_ref(), a.as_ref(), key));
    ranked
}

fn by_weight(a: &str, b: &str, key: &RepoKey) -> std::cmp::Ordering {
    score(a, key).cmp(&score(b, key)).then_with(|| b.cmp(a))
}

#[cfg(test)]
mod tests {
    use omnigraph_cloud_config::{GraphId, TenantId};

    use super::*;

    fn key(tenant: &str, graph: &str) -> RepoKey {
        RepoKey::new(TenantId::new(tenant).unwrap(), GraphId::new(graph).unwrap())
    }

    fn repos(count: usize) -> Vec<RepoKey> {
        (0..count)
            .map(|i| key(&format!("t{}", i % 37), &format!("g{i}")))
            .collect()
    }

    fn nodes(count: usize) -> Vec<String> {
        (1..=count).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn the_weights_are_fixed_across_builds_and_platforms() {
        // Golden values, computed by a separate implementation of the same definition (a few
        // lines of Python): a change of hash would move every repo of every cluster at once.
        assert_eq!(score("node-1", &key("acme", "g1")), 0xc426_1090_f1c9_6d25);
        assert_eq!(score("node-2", &key("acme", "g1")), 0x42eb_ad90_a9bc_0789);
        assert_ne!(
            score("ab", &key("c", "d")),
            score("a", &key("bc", "d")),
            "fields are length-prefixed"
        );
    }

    #[test]
    fn a_join_moves_its_share_and_only_to_the_newcomer() {
        let repos = repos(10_000);
        for count in 1..=6 {
            let before = nodes(count);
            let after = nodes(count + 1);
            let newcomer = &after[count];
            let mut moved = 0;
            for key in &repos {
                let (old, new) = (owner(&before, key).unwrap(), owner(&after, key).unwrap());
                if old != new {
                    assert_eq!(new, newcomer, "{key} moved between two old nodes");
                    moved += 1;
                }
            }
            let share = moved as f64 / repos.len() as f64;
            let expected = 1.0 / (count + 1) as f64;
            assert!(
                (share - expected).abs() <= 0.02,
                "{count} -> {} nodes moved {share:.3} of the repos, expected {expected:.3}",
                count + 1
            );
        }
    }

    #[test]
    fn a_leave_moves_only_the_leavers_repos_to_their_second_choice() {
        let repos = repos(10_000);
        let before = nodes(4);
        let leaver = &before[1];
        let after: Vec<String> = before.iter().filter(|n| *n != leaver).cloned().collect();
        for key in &repos {
            let old = owner(&before, key).unwrap();
            let new = owner(&after, key).unwrap();
            if old == leaver {
                assert_eq!(
                    new,
                    ranked(&before, key)[1],
                    "{key} went to its second choice"
                );
            } else {
                assert_eq!(old, new, "{key} moved though its owner stayed");
            }
        }
    }

    #[test]
    fn the_load_is_even_and_the_order_of_members_does_not_matter() {
        let repos = repos(10_000);
        let members = nodes(5);
        let mut reversed = members.clone();
        reversed.reverse();
        let mut counts = std::collections::HashMap::new();
        for key in &repos {
            let chosen = owner(&members, key).unwrap();
            assert_eq!(chosen, owner(&reversed, key).unwrap());
            *counts.entry(chosen.clone()).or_insert(0usize) += 1;
        }
        for (node, count) in counts {
            let share = count as f64 / repos.len() as f64;
            assert!((share - 0.2).abs() <= 0.02, "{node} owns {share:.3}");
        }
        assert_eq!(owner::<String>(&[], &repos[0]), None);
    }
}
