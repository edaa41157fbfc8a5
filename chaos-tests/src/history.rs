//! Histories of a chaos run and the checks they must pass (docs/chaos.md).
//!
//! A history is one JSON line per operation a client made: what it asked, when it sent it and
//! when the answer came (or did not), and what the answer said about where it landed (the
//! `__manifest` version, and for a write the writer-lease epoch). After the run every node is
//! healed and each branch read in full; the checker then holds the history against that final
//! state and against itself:
//!
//! 1. **Nothing acknowledged is lost**: every write answered 2xx (an insert, each id of a
//!    load, each id a merge carried) is in the final state of its branch. A write refused
//!    with a 4xx is not (it must not half-apply). A write with no answer, or a 5xx, is
//!    indeterminate: either is fine, but all of it or none (a load of several ids, a merge).
//!    An id a read saw is in the final state too: a write once visible stays.
//! 2. **Reads see what was acknowledged before them**: an export of a branch holds every id
//!    acknowledged on that branch before the export was sent.
//! 3. **Reads never go backwards**: if operation A returned before B was sent, on the same
//!    graph and branch, B's version is at least A's.
//! 4. **One publisher per version**: each version is reached under one lease epoch (a
//!    coalesced batch shares its version and epoch; a merge with nothing to bring publishes
//!    nothing and is left out).
//! 5. **Epochs fence**: no write acknowledged under epoch e carries a version above the first
//!    version acknowledged under a later epoch.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::linearizable::{self, Event, Kind, Searched};

/// The ids each branch holds after healing.
pub type FinalState = BTreeMap<String, BTreeSet<String>>;

/// One operation, as the client saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: u32,
    /// `insert` (a write of one new id), `load` (of several new ids), `branch` (created from
    /// main), `merge` (of `source` into `branch`), `read` (a count) or `export`.
    pub op: String,
    pub graph: String,
    pub branch: String,
    /// The id an insert writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The ids a load writes, or an export saw.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The branch a merge takes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What a merge answered it did: `merged`, `fast_forward` or `already_up_to_date`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
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

    /// A write that publishes a version of its branch. A merge with nothing to bring
    /// publishes nothing: its answer names the version it found, under its writer's epoch,
    /// which may be the version an earlier epoch published.
    fn writes(&self) -> bool {
        matches!(self.op.as_str(), "insert" | "load" | "merge")
            && self.outcome.as_deref() != Some("already_up_to_date")
    }

    /// The ids an insert or a load writes.
    fn written(&self) -> Vec<&String> {
        match self.op.as_str() {
            "insert" => self.id.iter().collect(),
            "load" => self.ids.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// What the checks found; empty lists mean the history passed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub operations: usize,
    /// Operations by kind: how many were acknowledged, refused and left indeterminate.
    pub by_kind: BTreeMap<String, [usize; 3]>,
    pub acknowledged_writes: usize,
    pub indeterminate_writes: usize,
    pub lost: Vec<String>,
    pub refused_but_landed: Vec<String>,
    /// Indeterminate loads or merges of which some ids landed and some did not.
    pub partial: Vec<String>,
    /// Exports that missed an id acknowledged before they were sent.
    pub stale_reads: Vec<String>,
    pub went_backwards: Vec<String>,
    pub shared_versions: Vec<String>,
    pub unfenced: Vec<String>,
    /// Why `main`'s history is not linearizable ([`crate::linearizable::check`]), if not.
    pub not_linearizable: Vec<String>,
    /// What the exhaustive search ([`crate::linearizable::search`]) said of the same events:
    /// `agreed`, `undecided` (too long, or over budget), `DISAGREED`, or `not run`.
    pub cross_check: String,
    /// Acknowledged writes whose answer said no version or no epoch: rules 2 to 4 could not
    /// see them. Counted, not a failure: a write is acknowledged without its version when
    /// the version could not be read within the writer's lease (docs/cluster.md).
    pub unstamped: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.refused_but_landed.is_empty()
            && self.partial.is_empty()
            && self.stale_reads.is_empty()
            && self.went_backwards.is_empty()
            && self.shared_versions.is_empty()
            && self.unfenced.is_empty()
            && self.not_linearizable.is_empty()
            && self.cross_check != "DISAGREED"
    }
}

/// Checks `history` against the ids each branch held after healing (`present`).
pub fn check(history: &[Operation], present: &FinalState) -> Verdict {
    let mut verdict = Verdict {
        operations: history.len(),
        ..Verdict::default()
    };
    for op in history {
        let outcome = if op.acknowledged() {
            0
        } else if op.refused() {
            1
        } else {
            2
        };
        verdict.by_kind.entry(op.op.clone()).or_default()[outcome] += 1;
    }
    let none = BTreeSet::new();
    let on = |branch: &str| present.get(branch).unwrap_or(&none);
    for op in history
        .iter()
        .filter(|op| matches!(op.op.as_str(), "insert" | "load"))
    {
        let ids = op.written();
        let landed: Vec<&&String> = ids
            .iter()
            .filter(|id| on(&op.branch).contains(**id))
            .collect();
        let name = || format!("{} of {:?} on {}", op.op, ids, op.branch);
        if op.acknowledged() {
            verdict.acknowledged_writes += 1;
            if op.version.is_none() || op.epoch.is_none() {
                verdict.unstamped.push(name());
            }
            for id in ids.iter().filter(|id| !on(&op.branch).contains(**id)) {
                verdict
                    .lost
                    .push(format!("{id} ({} on {})", op.op, op.branch));
            }
        } else if op.refused() {
            if !landed.is_empty() {
                verdict
                    .refused_but_landed
                    .push(format!("{} (status {})", name(), op.status));
            }
        } else {
            verdict.indeterminate_writes += 1;
            if !landed.is_empty() && landed.len() < ids.len() {
                verdict.partial.push(format!(
                    "{}: {} of {} landed",
                    name(),
                    landed.len(),
                    ids.len()
                ));
            }
        }
    }
    // What each branch was acknowledged to hold, and when.
    let mut acknowledged: BTreeMap<&str, Vec<(u64, &String)>> = BTreeMap::new();
    for op in history.iter().filter(|op| op.acknowledged()) {
        for id in op.written() {
            acknowledged
                .entry(op.branch.as_str())
                .or_default()
                .push((op.return_ms, id));
        }
    }
    let mut merges: Vec<&Operation> = history.iter().filter(|op| op.op == "merge").collect();
    merges.sort_by_key(|op| op.return_ms);
    for merge in merges {
        let Some(source) = &merge.source else {
            continue;
        };
        // The ids acknowledged on the source before the merge was sent: the merge carries them.
        let carried: Vec<&String> = acknowledged
            .get(source.as_str())
            .into_iter()
            .flatten()
            .filter(|(returned, _)| *returned < merge.invoke_ms)
            .map(|(_, id)| *id)
            .collect();
        let target = on(&merge.branch);
        let landed = carried.iter().filter(|id| target.contains(**id)).count();
        let name = format!(
            "merge of {source} into {} by client {}",
            merge.branch, merge.client
        );
        if merge.acknowledged() {
            verdict.acknowledged_writes += 1;
            for id in carried.iter().filter(|id| !target.contains(**id)) {
                verdict.lost.push(format!("{id} ({name})"));
            }
            let carried: Vec<(u64, &String)> = carried
                .into_iter()
                .map(|id| (merge.return_ms, id))
                .collect();
            acknowledged
                .entry(merge.branch.as_str())
                .or_default()
                .extend(carried);
        } else if merge.refused() {
            if landed > 0 {
                verdict
                    .refused_but_landed
                    .push(format!("{name} (status {})", merge.status));
            }
        } else {
            verdict.indeterminate_writes += 1;
            if landed > 0 && landed < carried.len() {
                verdict.partial.push(format!(
                    "{name}: {landed} of {} carried ids landed",
                    carried.len()
                ));
            }
        }
    }
    for export in history
        .iter()
        .filter(|op| op.op == "export" && op.acknowledged())
    {
        let seen: BTreeSet<&String> = export.ids.iter().collect();
        let missed: Vec<&String> = acknowledged
            .get(export.branch.as_str())
            .into_iter()
            .flatten()
            .filter(|(returned, id)| *returned < export.invoke_ms && !seen.contains(id))
            .map(|(_, id)| *id)
            .collect();
        if let Some(first) = missed.first() {
            verdict.stale_reads.push(format!(
                "export of {} by client {} sent at {} missed {} acknowledged ids ({first}, ...)",
                export.branch,
                export.client,
                export.invoke_ms,
                missed.len()
            ));
        }
        for id in seen.iter().filter(|id| !on(&export.branch).contains(**id)) {
            verdict.lost.push(format!(
                "{id} (seen by an export of {}, then gone)",
                export.branch
            ));
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
        .not_linearizable
        .extend(linearizable::check(&events(history, present)).err());
    verdict.cross_check = "not run".into();
    verdict
}

/// [`check`], with the exhaustive search's answer on the same events held against the fast
/// checker's (for the real cluster's histories; the simulation's are too many and too long).
pub fn check_and_cross_check(history: &[Operation], present: &FinalState) -> Verdict {
    let mut verdict = check(history, present);
    let events = events(history, present);
    let fast = verdict.not_linearizable.is_empty();
    verdict.cross_check = match (linearizable::search(&events, SEARCH_BUDGET), fast) {
        (Searched::Undecided, _) => "undecided",
        (Searched::Linearizable, true) | (Searched::NotLinearizable, false) => "agreed",
        _ => "DISAGREED",
    }
    .into();
    verdict
}

/// Steps the exhaustive search may take on one history.
const SEARCH_BUDGET: u64 = 2_000_000;

/// The events of `history` on `main`, with the healed graph as a last read: inserts and
/// loads add their ids, a merge the ids written on its branch that `main` holds in the end.
pub fn events(history: &[Operation], present: &FinalState) -> Vec<Event> {
    let none = BTreeSet::new();
    let main = present.get("main").unwrap_or(&none);
    let mut events = Vec::new();
    for op in history.iter().filter(|op| op.branch == "main") {
        let acknowledged = (200..300).contains(&op.status);
        let refused = (400..500).contains(&op.status);
        let ret = if acknowledged { op.return_ms } else { u64::MAX };
        let ids: Vec<String> = match op.op.as_str() {
            "insert" => op.id.iter().cloned().collect(),
            "load" => op.ids.clone(),
            // What was written on the branch itself (it also holds what it forked from
            // main) and reached main.
            "merge" => history
                .iter()
                .filter(|written| Some(&written.branch) == op.source.as_ref())
                .flat_map(|written| written.written())
                .filter(|id| main.contains(*id))
                .cloned()
                .collect(),
            "export" if acknowledged => {
                events.push(Event {
                    invoke: op.invoke_ms,
                    ret,
                    kind: Kind::Read {
                        ids: op.ids.iter().cloned().collect(),
                    },
                });
                continue;
            }
            _ => continue,
        };
        if refused {
            continue;
        }
        events.push(Event {
            invoke: op.invoke_ms,
            ret,
            kind: Kind::Add {
                ids,
                required: acknowledged,
            },
        });
    }
    let end = events
        .iter()
        .flat_map(|event| [event.invoke, event.ret])
        .filter(|time| *time != u64::MAX)
        .max()
        .unwrap_or(0)
        + 1;
    events.push(Event {
        invoke: end,
        ret: end,
        kind: Kind::Read { ids: main.clone() },
    });
    events
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
    for op in ops.iter().filter(|op| op.writes()) {
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
    for op in ops.iter().filter(|op| op.writes()) {
        if let (Some(version), Some(epoch)) = (op.version, op.epoch) {
            let first = first_of.entry(epoch).or_insert(version);
            *first = (*first).min(version);
        }
    }
    let mut found = Vec::new();
    for op in ops.iter().filter(|op| op.writes()) {
        let (Some(version), Some(epoch)) = (op.version, op.epoch) else {
            continue;
        };
        let later = first_of.range(epoch + 1..).map(|(_, first)| *first).min();
        if let Some(later) = later
            && version > later
        {
            found.push(format!(
                "{} {:?} acknowledged under epoch {epoch} at version {version}, above version \
                 {later} of a later epoch",
                op.op, op.id
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
            ..Operation::default()
        }
    }

    fn present(ids: &[&str]) -> FinalState {
        [(
            "main".to_string(),
            ids.iter().map(|id| id.to_string()).collect(),
        )]
        .into()
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
        assert_eq!(verdict.lost, ["a (insert on main)"]);
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

    fn with(mut op: Operation, f: impl FnOnce(&mut Operation)) -> Operation {
        f(&mut op);
        op
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn a_half_applied_load_and_a_merge_that_dropped_ids_are_found() {
        let load = |status| {
            with(op(1, "load", "", (0, 10), status, (3, 1)), |op| {
                op.ids = ids(&["l1", "l2", "l3"])
            })
        };
        // Indeterminate: all or none.
        let verdict = check(&[load(503)], &present(&["l1", "l2", "l3"]));
        assert!(verdict.passed(), "{verdict:?}");
        assert!(check(&[load(0)], &present(&[])).passed());
        let verdict = check(&[load(0)], &present(&["l1"]));
        assert_eq!(verdict.partial.len(), 1, "{verdict:?}");
        let verdict = check(&[load(200)], &present(&["l1", "l3"]));
        assert_eq!(verdict.lost, ["l2 (load on main)"]);

        let on_branch = |id: &str, times| {
            with(op(2, "insert", id, times, 200, (2, 1)), |op| {
                op.branch = "b".into()
            })
        };
        let merge = |status, times| {
            with(op(2, "merge", "", times, status, (9, 1)), |op| {
                op.source = Some("b".into())
            })
        };
        let history = vec![
            on_branch("x", (0, 5)),
            on_branch("y", (6, 8)),
            // Returned after the merge was sent: the merge may or may not carry it.
            on_branch("z", (7, 12)),
            merge(200, (10, 20)),
        ];
        let mut state = present(&["x"]);
        state.insert("b".into(), ["x", "y", "z"].map(String::from).into());
        let verdict = check(&history, &state);
        assert_eq!(
            verdict.lost,
            ["y (merge of b into main by client 2)"],
            "{verdict:?}"
        );
        state.get_mut("main").unwrap().insert("y".into());
        assert!(check(&history, &state).passed());
        let mut indeterminate = history.clone();
        indeterminate[3] = merge(0, (10, 20));
        state.get_mut("main").unwrap().remove("y");
        assert_eq!(check(&indeterminate, &state).partial.len(), 1);
    }

    #[test]
    fn an_export_missing_an_earlier_write_or_showing_a_write_later_gone_is_found() {
        let export = |seen: &[&str], times| {
            with(op(3, "export", "", times, 200, (4, 0)), |op| {
                op.ids = ids(seen)
            })
        };
        let history = vec![
            op(1, "insert", "a", (0, 10), 200, (2, 1)),
            op(2, "insert", "b", (5, 30), 0, (0, 0)),
            // Sent after a returned, concurrent with b: must hold a; may hold b.
            export(&["a", "b"], (11, 15)),
            export(&["a"], (12, 16)),
            export(&[], (20, 25)),
        ];
        let verdict = check(&history, &present(&["a", "b"]));
        assert_eq!(verdict.stale_reads.len(), 1, "{verdict:?}");
        assert!(verdict.stale_reads[0].contains("sent at 20"));
        // b was seen, so it was written: it cannot be gone afterwards.
        let verdict = check(&history[..3], &present(&["a"]));
        assert_eq!(verdict.lost, ["b (seen by an export of main, then gone)"]);
    }

    /// A branch holds what it forked from main; merged back, only what was written on it
    /// counts as the merge's (seed 8 of the first run with merges found this).
    #[test]
    fn a_merged_branch_brings_only_its_own_writes() {
        let history = vec![
            op(1, "insert", "m", (0, 5), 200, (2, 1)),
            with(op(2, "branch", "", (6, 8), 200, (3, 1)), |op| {
                op.branch = "b".into()
            }),
            with(op(2, "insert", "x", (9, 10), 200, (4, 1)), |op| {
                op.branch = "b".into()
            }),
            with(op(2, "merge", "", (11, 14), 200, (5, 1)), |op| {
                op.source = Some("b".into())
            }),
            with(op(3, "export", "", (15, 16), 200, (5, 0)), |op| {
                op.ids = ids(&["m", "x"])
            }),
        ];
        let mut state = present(&["m", "x"]);
        state.insert("b".into(), ["m", "x"].map(String::from).into());
        let verdict = check_and_cross_check(&history, &state);
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!(verdict.cross_check, "agreed");
    }

    /// A merge with nothing to bring names the version it found under the new writer's
    /// epoch; that is no second publisher (seed 418 of the long run).
    #[test]
    fn a_merge_with_nothing_to_bring_publishes_no_version() {
        let merge = |client, outcome: &str, times, landed| {
            with(op(client, "merge", "", times, 200, landed), |op| {
                op.source = Some(format!("b{client}"));
                op.outcome = Some(outcome.into());
            })
        };
        let history = vec![
            merge(1, "merged", (0, 10), (28, 3)),
            merge(2, "already_up_to_date", (20, 30), (28, 4)),
        ];
        assert!(check(&history, &present(&[])).passed());
        let mut published = history.clone();
        published[1].outcome = Some("merged".into());
        assert_eq!(check(&published, &present(&[])).shared_versions.len(), 1);
    }
}
