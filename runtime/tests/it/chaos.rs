//! One chaos run in CI (docs/chaos.md): a three-node cluster on moto behind the fault proxy,
//! four clients inserting, loading, branching, merging, reading and exporting, a seeded
//! schedule of kills, pauses and storage faults, and the history checked. Longer runs are `og-chaos long`.

use std::time::Duration;

use omnigraph_cloud_chaos::scenario::{Scenario, run};
use omnigraph_cloud_chaos::simulation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_chaos_run_loses_nothing_and_never_goes_backwards() {
    if !omnigraph_cloud_chaos::S3Server::available() {
        let required = std::env::var("OMNIGRAPH_TEST_S3").is_ok_and(|value| value == "require");
        assert!(
            !required,
            "OMNIGRAPH_TEST_S3=require but moto is not installed"
        );
        eprintln!("skipping: moto is not installed; run scripts/test.sh to install it");
        return;
    }
    let seed = 20_261_128;
    let outcome = run(&Scenario {
        seed,
        duration: Duration::from_secs(20),
        nodes: 3,
        clients: 4,
        binary: crate::process::BIN.into(),
        history: None,
    })
    .await;
    let verdict = &outcome.verdict;
    assert!(
        verdict.passed(),
        "seed {seed} (replay: og-chaos run --seed {seed}): {outcome:#?}"
    );
    assert!(!outcome.faults.is_empty(), "the schedule injected faults");
    assert!(verdict.acknowledged_writes > 20, "{verdict:?}");
    // Every kind of operation of the workload was acknowledged at least once.
    for kind in ["insert", "load", "branch", "merge", "read", "export"] {
        assert!(
            verdict
                .by_kind
                .get(kind)
                .is_some_and(|counts| counts[0] > 0),
            "no {kind} acknowledged: {:?}",
            verdict.by_kind
        );
    }
}

/// The deterministic simulation (`omnigraph_cloud_actors::sim`) over a bounded set of seeds:
/// every check passes on every seed, and the faults did strike (some writes were left
/// indeterminate, some lease epochs taken over).
#[test]
fn simulated_seeds_lose_nothing_and_stay_fenced() {
    let config = omnigraph_cloud_actors::sim::SimConfig::default();
    let mut totals = simulation::SimTotals::default();
    for seed in 1..=500 {
        let (_, verdict) = simulation::run_and_check(seed, &config);
        assert!(
            verdict.passed(),
            "seed {seed} (replay: og-chaos sim --seed {seed}): {verdict:#?}"
        );
        totals.add(&verdict);
    }
    assert!(totals.acknowledged > 25_000, "{totals:?}");
    assert!(
        totals.handovers > 100,
        "the writer changed hands: {totals:?}"
    );
    assert!(
        totals.indeterminate > 0,
        "the faults left some writes in doubt: {totals:?}"
    );
}

/// A seed replays exactly: the same faults, the same answers at the same simulated times,
/// the same commits.
#[test]
fn a_simulated_seed_replays_exactly() {
    let config = omnigraph_cloud_actors::sim::SimConfig::default();
    let first = omnigraph_cloud_actors::sim::run(42, &config);
    let again = omnigraph_cloud_actors::sim::run(42, &config);
    assert!(!first.faults.is_empty() && !first.commits.is_empty());
    assert_eq!(first, again);
    let other = omnigraph_cloud_actors::sim::run(43, &config);
    assert_ne!(first.history, other.history, "another seed is another run");
}

/// The seeds on which the simulation first found acknowledgements stamped with the next
/// writer's version (a version read that outlived the writer's fence; fixed in
/// `coalescer::publish::stamp_of`). Pinned to the simulation as it was then: a change to the
/// simulation's draws makes them other runs, so keep them alongside new ones.
#[test]
fn the_seeds_that_found_stamps_from_the_next_writer_pass() {
    let config = omnigraph_cloud_actors::sim::SimConfig::default();
    for seed in [483, 609, 749, 1257, 1699, 2686] {
        let (run, verdict) = simulation::run_and_check(seed, &config);
        assert!(verdict.passed(), "seed {seed}: {verdict:#?}");
        assert!(verdict.epochs > 1, "seed {seed}: the writer changed hands");
        assert!(!run.faults.is_empty());
    }
}
