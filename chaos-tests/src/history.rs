//! Histories of a chaos run and the checks they must pass (docs/chaos.md).
//!
//! A history is one JSON line per operation a client made: what it asked, when it sent it and
//! when the answer came (or did not), and what the answer said about where it landed (the
//! `__manifest` version, and for a write the writer-lease epoch). After the run every node is
//! healed and the graph read in full; the checker then holds the history against that final
//! state and against itself:
//!
//! 1. **Nothing acknowledged is lost**: every write answered 2xx is in the final state.
//!    A write refused with a 4xx is not (it must not half-apply). A write with no answer,
//!    or a 5xx, is indeterminate: either is fine.
//! 2. **Reads never go backwards**: if operation A returned before B was sent, on the same
//!    graph and branch, B's version is at least A's.
//! 3. **One publisher per version**: each version is reached under one lease epoch (a
//!    coalesced batch shares its version and epoch).
//! 4. **Epochs fence**: no write acknowledged under epoch e carries a version above the first
//!    version acknowledged under a later epoch.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One operation, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: u32,
    /// `insert` (a write of one new id) or `read`.
    pub op: String,
    pub graph: String,
    pub branch: String,
    /// The id an insert writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub invoke_ms: u64,
    pub return_ms: u64,
    /// The HTTP status; 0 when no answer came (connection refused, reset, timed out).
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

impl Operation {
    fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn refused(&self) -> bool {
        (400..500).contains(&self.status)
    }
}

/// What the checks found; empty lists mean the history passed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub operations: usize,
    pub acknowledged_writes: usize,
    pub indeterminate_writes: usize,
    pub lost: Vec<String>,
    pub refused_but_landed: Vec<String>,
    pub went_backwards: Vec<String>,
    pub shared_versions: Vec<String>,
    pub unfenced: Vec<String>,
    /// Acknowledged writes whose answer said no version or no epoch: rules 2 to 4 could not
    /// see them. Counted, not a failure: a write is acknowledged without its version when
    /// the version could not be read within the writer's lease (docs/cluster.md).
    pub unstamped: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.refused_but_landed.is_empty()
            && self.went_backwards.is_empty()
            && self.shared_versions.is_empty()
            && self.unfenced.is_empty()
    }
}

/// Checks `history` against the ids found in the graph after healing (`present`).
pub fn check(history: &[Operation], present: &BTreeSet<String>) -> Verdict {
    let mut verdict = Verdict {
        operations: history.len(),
        ..Verdict::default()
    };
    for op in history.iter().filter(|op| op.op == "insert") {
        let Some(id) = &op.id else { continue };
        if op.acknowledged() {
            verdict.acknowledged_writes += 1;
            if op.version.is_none() || op.epoch.is_none() {
                verdict.unstamped.push(id.clone());
            }
            if !present.contains(id) {
                verdict.lost.push(id.clone());
            }
        } else if op.refused() {
            if present.contains(id) {
                verdict
                    .refused_but_landed
                    .push(format!("{id} (status {})", op.status));
            }
        } else {
            verdict.indeterminate_writes += 1;
        }
    }
    let mut by_branch: BTreeMap<(&str, &str), Vec<&Operation>> = BTreeMap::new();
    for op in history
        .iter()
        .filter(|op| op.acknowledged() && op.version.is_some())
    {
        by_branch
            .entry((op.graph.as_str(), op.branch.as_str()))
            .or_default()
            .push(op);
    }
    for ops in by_branch.values() {
        verdict.went_backwards.extend(backwards(ops));
        verdict.shared_versions.extend(shared_versions(ops));
        verdict.unfenced.extend(unfenced(ops));
    }
    verdict
}

/// Pairs A before B (A returned before B was sent) where B saw an older version than A.
fn backwards(ops: &[&Operation]) -> Vec<String> {
    let mut returned: Vec<&Operation> = ops.to_vec();
    returned.sort_by_key(|op| op.return_ms);
    let mut invoked: Vec<&Operation> = ops.to_vec();
    invoked.sort_by_key(|op| op.invoke_ms);
    let mut found = Vec::new();
    // Sweep: the newest version returned before each operation was sent.
    let mut newest: Option<&Operation> = None;
    let mut next = 0;
    for op in invoked {
        while next < returned.len() && returned[next].return_ms < op.invoke_ms {
            let candidate = returned[next];
            if newest.is_none_or(|n| candidate.version > n.version) {
                newest = Some(candidate);
            }
            next += 1;
        }
        if let Some(before) = newest
            && op.version < before.version
        {
            found.push(format!(
                "client {} {} sent at {} saw version {:?}, after client {} {} returned version {:?} at {}",
                op.client, op.op, op.invoke_ms, op.version, before.client, before.op,
                before.version, before.return_ms
            ));
        }
    }
    found
}

/// Versions reached by writes under more than one epoch.
fn shared_versions(ops: &[&Operation]) -> Vec<String> {
    let mut epochs: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.op == "insert") {
        if let (Some(version), Some(epoch)) = (op.version, op.epoch) {
            epochs.entry(version).or_default().insert(epoch);
        }
    }
    epochs
        .into_iter()
        .filter(|(_, epochs)| epochs.len() > 1)
        .map(|(version, epochs)| format!("version {version} published under epochs {epochs:?}"))
        .collect()
}

/// Writes acknowledged under an epoch with a version above the first one of a later epoch.
fn unfenced(ops: &[&Operation]) -> Vec<String> {
    let mut first_of: BTreeMap<u64, u64> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.op == "insert") {
        if let (Some(version), Some(epoch)) = (op.version, op.epoch) {
            let first = first_of.entry(epoch).or_insert(version);
            *first = (*first).min(version);
        }
    }
    let mut found = Vec::new();
    for op in ops.iter().filter(|op| op.op == "insert") {
        let (Some(version), Some(epoch)) = (op.version, op.epoch) else {
            continue;
        };
        let later = first_of.range(epoch + 1..).map(|(_, first)| *first).min();
        if let Some(later) = later
            && version > later
        {
            found.push(format!(
                "{:?} acknowledged under epoch {epoch} at version {version}, above version \
                 {later} of a later epoch",
                op.id
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: u32,
        kind: &str,
        id: &str,
        times: (u64, u64),
        status: u16,
        landed: (u64, u64),
    ) -> Operation {
        Operation {
            client,
            op: kind.into(),
            graph: "g".into(),
            branch: "main".into(),
            id: (!id.is_empty()).then(|| id.to_string()),
            invoke_ms: times.0,
            return_ms: times.1,
            status,
            version: (landed.0 > 0).then_some(landed.0),
            epoch: (landed.1 > 0).then_some(landed.1),
        }
    }

    fn present(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn a_clean_history_passes_and_indeterminate_writes_may_go_either_way() {
        let history = vec![
            op(1, "insert", "a", (0, 10), 200, (2, 1)),
            op(2, "insert", "b", (5, 12), 200, (2, 1)), // coalesced with a
            op(3, "insert", "c", (11, 20), 0, (0, 0)),  // no answer
            op(1, "read", "", (21, 25), 200, (2, 0)),
            op(2, "insert", "d", (26, 30), 503, (0, 0)),
        ];
        let verdict = check(&history, &present(&["a", "b", "d"]));
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!(verdict.acknowledged_writes, 2);
        assert_eq!(verdict.indeterminate_writes, 2);
    }

    #[test]
    fn a_lost_write_and_a_refused_one_that_landed_are_found() {
        let history = vec![
            op(1, "insert", "a", (0, 10), 200, (2, 1)),
            op(2, "insert", "b", (0, 10), 429, (0, 0)),
        ];
        let verdict = check(&history, &present(&["b"]));
        assert_eq!(verdict.lost, vec!["a".to_string()]);
        assert_eq!(verdict.refused_but_landed.len(), 1);
    }

    #[test]
    fn a_read_older_than_a_write_that_returned_before_it_is_found() {
        let history = vec![
            op(1, "insert", "a", (0, 10), 200, (5, 1)),
            op(2, "read", "", (11, 15), 200, (4, 0)),
            // Concurrent with the write: may see either.
            op(3, "read", "", (5, 12), 200, (4, 0)),
        ];
        let verdict = check(&history, &present(&["a"]));
        assert_eq!(verdict.went_backwards.len(), 1, "{verdict:?}");
        assert!(verdict.went_backwards[0].starts_with("client 2"));
    }

    #[test]
    fn two_epochs_on_one_version_and_an_unfenced_write_are_found() {
        let history = vec![
            op(1, "insert", "a", (0, 10), 200, (5, 1)),
            op(2, "insert", "b", (20, 30), 200, (5, 2)),
            op(3, "insert", "c", (40, 50), 200, (7, 2)),
            // Acknowledged under the old epoch after the new one had published 5.
            op(4, "insert", "d", (40, 55), 200, (8, 1)),
        ];
        let verdict = check(&history, &present(&["a", "b", "c", "d"]));
        assert_eq!(verdict.shared_versions.len(), 1, "{verdict:?}");
        assert_eq!(verdict.unfenced.len(), 1, "{verdict:?}");
    }
}
