//! A full cache disk (docs/cache.md#a-full-disk): the disk tier on a small tmpfs filled to
//! the last byte while the node serves. The memory tier's flush at shutdown then cannot be
//! written; the node still stops cleanly, starts again on what is left, and answers as before.
//! Space freed, the disk tier works again.
//!
//! Needs root to mount the tmpfs (CI runs as root); elsewhere it says so and passes without
//! running, except under `CI=true`, where it fails.

use omnigraph_cloud_chaos::Tmpfs;

use crate::cache::everyone;
use crate::support::{TestNode, example};

const QUIET: &str = "[maintenance]\nenabled = false\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cache_disk_costs_hits_never_answers() {
    let Some(disk) = Tmpfs::mount(8 * 1024 * 1024) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "a tmpfs is needed under CI (run as root)"
        );
        eprintln!("skipped: a tmpfs cannot be mounted here (needs root)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    // The disk tier is larger than the disk: foyer's files are sparse, so it starts.
    let toml = format!(
        "{QUIET}[cache]\ndir = {:?}\nmemory_bytes = 16777216\ndisk_bytes = 268435456\n",
        disk.path().display().to_string()
    );
    let mut node = TestNode::start_on(root.path(), &toml).await;
    let client = node.client();
    client.create_graph("g").await;
    client.load("g", &example("team.jsonl"), "overwrite").await;
    for i in 0..5 {
        client
            .insert_person("g", &format!("p{i}"), i)
            .await
            .expect(200);
    }
    let expected = everyone(&client).await;

    // Full while the node serves: reads and writes go on.
    let filler = disk.fill();
    assert_eq!(disk.free_bytes(), 0);
    client.insert_person("g", "Full", 1).await.expect(200);
    let mut expected_full = expected.clone();
    expected_full.push(("Full".into(), 1));
    expected_full.sort();
    assert_eq!(everyone(&client).await, expected_full);
    // The flush of the memory tier at shutdown finds no space, and the node stops anyway.
    node.shutdown().await;

    // Started again on whatever the disk tier holds: the same answers.
    let mut node = TestNode::start_on(root.path(), &toml).await;
    let client = node.client();
    assert_eq!(everyone(&client).await, expected_full);
    client.insert_person("g", "Again", 2).await.expect(200);
    node.shutdown().await;

    // Space again: the next flush lands, and a restart reads blocks from disk.
    std::fs::remove_file(filler).unwrap();
    let mut node = TestNode::start_on(root.path(), &toml).await;
    let client = node.client();
    let expected_again = everyone(&client).await;
    assert_eq!(expected_again.len(), expected_full.len() + 1);
    node.shutdown().await;
    let node = TestNode::start_on(root.path(), &toml).await;
    let client = node.client();
    assert_eq!(everyone(&client).await, expected_again);
    let disk_hits = client
        .metric_value("omnigraph_cache_hits_total{tier=\"disk\"}")
        .await
        .unwrap_or(0.0);
    assert!(disk_hits > 0.0, "blocks were read back from the disk tier");
}
