//! One chaos run in CI (docs/chaos.md): a three-node cluster on moto behind the fault proxy,
//! four clients, a seeded schedule of kills, pauses and storage faults, and the history
//! checked. Longer runs are `og-chaos long`.

use std::time::Duration;

use omnigraph_cloud_chaos::scenario::{Scenario, run};

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
    assert!(outcome.present >= verdict.acknowledged_writes);
}
