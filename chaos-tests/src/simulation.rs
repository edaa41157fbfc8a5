//! Checking the deterministic simulation's runs (`omnigraph_cloud_actors::sim`): the same
//! history checker as the real cluster's runs, and what only a simulation can see, since it
//! knows every commit that landed and who published it.

use std::collections::BTreeMap;

use omnigraph_cloud_actors::sim::{SimConfig, SimRun, run};
use serde::Serialize;

use crate::history::{self, Operation, Verdict};

/// What the checks of one simulated run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimVerdict {
    pub seed: u64,
    pub faults: usize,
    pub commits: usize,
    /// Writer-lease epochs that published: more than one means the writer changed hands.
    pub epochs: usize,
    pub history: Verdict,
    /// Acknowledged writes whose answer named a version that does not hold them, or an epoch
    /// other than the one they were published under, or a version published under another
    /// epoch than the one named.
    pub misstamped: Vec<String>,
    /// Ids in more than one commit: a write applied twice.
    pub applied_twice: Vec<String>,
    /// Commits that landed under an older epoch than an earlier commit's: a request the old
    /// holder sent before its fence closed, landing after the new holder published. Never
    /// acknowledged (the fence answered "outcome unknown"), and harmless to inserts, but
    /// counted: the store has no fencing tokens to refuse it (docs/chaos.md).
    pub late_landings: usize,
}

impl SimVerdict {
    /// Whether every check passed. Acknowledgements without a version are counted apart,
    /// as in the real runs: the simulated store fails the version read after a publish
    /// often enough that some must go without.
    pub fn passed(&self) -> bool {
        self.history.passed() && self.misstamped.is_empty() && self.applied_twice.is_empty()
    }
}

/// The run's requests in the history checker's terms.
pub fn operations(run: &SimRun) -> Vec<Operation> {
    run.history
        .iter()
        .map(|op| Operation {
            client: op.client,
            op: "insert".into(),
            graph: "g".into(),
            branch: "main".into(),
            id: Some(op.id.clone()),
            invoke_ms: op.invoke_ms,
            return_ms: op.return_ms,
            status: op.status,
            version: op.version,
            epoch: op.epoch,
            ..Operation::default()
        })
        .collect()
}

/// Checks one run.
pub fn check(run: &SimRun) -> SimVerdict {
    let mut verdict = SimVerdict {
        seed: run.seed,
        faults: run.faults.len(),
        commits: run.commits.len(),
        epochs: run
            .commits
            .iter()
            .map(|commit| commit.epoch)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        history: history::check(
            &operations(run),
            &[("main".to_string(), run.present())].into(),
        ),
        ..SimVerdict::default()
    };
    let mut holding: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for commit in &run.commits {
        for id in &commit.ids {
            holding.entry(id).or_default().push(commit.version);
        }
    }
    for (id, versions) in &holding {
        if versions.len() > 1 {
            verdict
                .applied_twice
                .push(format!("{id} in versions {versions:?}"));
        }
    }
    let by_version: BTreeMap<u64, _> = run.commits.iter().map(|c| (c.version, c)).collect();
    for op in run
        .history
        .iter()
        .filter(|op| (200..300).contains(&op.status))
    {
        let Some(&version) = holding.get(op.id.as_str()).and_then(|v| v.first()) else {
            continue; // lost: the history check says so
        };
        let epoch = by_version[&version].epoch;
        // The version named must hold the write, and have been published under the epoch
        // named, which is the write's own.
        let named = op.version.map(|named| by_version.get(&named));
        let consistent = op.epoch == Some(epoch)
            && match named {
                None => true, // no version named (unstamped, counted apart)
                Some(named) => {
                    op.version >= Some(version)
                        && named.is_some_and(|named| Some(named.epoch) == op.epoch)
                }
            };
        if !consistent {
            verdict.misstamped.push(format!(
                "{} acknowledged at version {:?} epoch {:?}, landed in version {version} under \
                 epoch {epoch}",
                op.id, op.version, op.epoch
            ));
        }
    }
    let mut highest = 0;
    for commit in &run.commits {
        if commit.epoch < highest {
            verdict.late_landings += 1;
        }
        highest = highest.max(commit.epoch);
    }
    verdict
}

/// Runs and checks seed `seed`.
pub fn run_and_check(seed: u64, config: &SimConfig) -> (SimRun, SimVerdict) {
    let run = run(seed, config);
    let verdict = check(&run);
    (run, verdict)
}

/// Sums over many simulated runs.
#[derive(Debug, Clone, Default)]
pub struct SimTotals {
    pub seeds: u64,
    pub faults: usize,
    pub operations: usize,
    pub acknowledged: usize,
    pub indeterminate: usize,
    pub commits: usize,
    pub handovers: usize,
    pub lost: usize,
    pub refused_but_landed: usize,
    pub backwards: usize,
    pub shared_versions: usize,
    pub unfenced: usize,
    pub unstamped: usize,
    pub misstamped: usize,
    pub applied_twice: usize,
    pub late_landings: usize,
    pub failed: Vec<u64>,
}

impl SimTotals {
    pub fn add(&mut self, verdict: &SimVerdict) {
        let history = &verdict.history;
        self.seeds += 1;
        self.faults += verdict.faults;
        self.operations += history.operations;
        self.acknowledged += history.acknowledged_writes;
        self.indeterminate += history.indeterminate_writes;
        self.commits += verdict.commits;
        self.handovers += verdict.epochs.saturating_sub(1);
        self.lost += history.lost.len();
        self.refused_but_landed += history.refused_but_landed.len();
        self.backwards += history.went_backwards.len();
        self.shared_versions += history.shared_versions.len();
        self.unfenced += history.unfenced.len();
        self.unstamped += history.unstamped.len();
        self.misstamped += verdict.misstamped.len();
        self.applied_twice += verdict.applied_twice.len();
        self.late_landings += verdict.late_landings;
        if !verdict.passed() {
            self.failed.push(verdict.seed);
        }
    }

    /// The totals as a Markdown table, with the rate over `took` of wall time.
    pub fn table(&self, took: std::time::Duration) -> String {
        let per_minute = self.seeds as f64 / took.as_secs_f64().max(1e-9) * 60.0;
        let rows = [
            ("seeds", self.seeds.to_string()),
            (
                "wall time",
                format!("{:.1} s ({per_minute:.0} seeds/min)", took.as_secs_f64()),
            ),
            ("faults injected", self.faults.to_string()),
            ("requests", self.operations.to_string()),
            ("acknowledged writes", self.acknowledged.to_string()),
            ("indeterminate writes", self.indeterminate.to_string()),
            ("commits", self.commits.to_string()),
            (
                "writer changes (a later epoch published)",
                self.handovers.to_string(),
            ),
            ("lost", self.lost.to_string()),
            ("refused but landed", self.refused_but_landed.to_string()),
            ("went backwards", self.backwards.to_string()),
            (
                "versions under two epochs",
                self.shared_versions.to_string(),
            ),
            (
                "acknowledged under an epoch after a later one published",
                self.unfenced.to_string(),
            ),
            (
                "acknowledged without a version (counted, not failures)",
                self.unstamped.to_string(),
            ),
            ("misstamped", self.misstamped.to_string()),
            ("applied twice", self.applied_twice.to_string()),
            (
                "late landings (counted, not failures)",
                self.late_landings.to_string(),
            ),
            ("failed seeds", self.failed.len().to_string()),
        ];
        let mut table = String::from("| | |\n|---|---|\n");
        for (name, value) in rows {
            table.push_str(&format!("| {name} | {value} |\n"));
        }
        table
    }
}
