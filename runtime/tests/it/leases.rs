//! Leases and the worker tier with real processes on one storage root: exclusivity under a
//! race, a frozen holder taken over, a killed writer recovered, compaction under load, and an
//! evicted repo that costs nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::process::{BIN, Server, free_port};
use crate::support::{Client, GET_PERSON, TestNode, eventually, s3_backend};

/// A node config on `root` (a storage URI) with short leases.
fn node_config(dir: &Path, name: &str, port: u16, root: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[node]\nid = \"{name}\"\n[server]\nbind = \"127.0.0.1:{port}\"\n[storage]\nroot = \"{root}\"\n\
             [leases]\nttl = \"3s\"\nsafety_margin = \"1s\"\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// Runs two `lease contend` processes against one lease until it reaches epoch 100, and
/// checks that every epoch had exactly one holder and that holds never overlapped.
async fn race_for_one_lease(config: &Path) {
    let spawn = || {
        Command::new(BIN)
            .args(["lease", "contend", "--config"])
            .arg(config)
            .args([
                "acme/g",
                "--kind",
                "compaction",
                "--epochs",
                "100",
                "--hold",
                "2ms",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("contender starts")
    };
    let (first, second) = (spawn(), spawn());
    let outputs = tokio::task::spawn_blocking(move || {
        [first, second].map(|child| child.wait_with_output().expect("contender ends"))
    })
    .await
    .unwrap();
    let mut holds: Vec<Value> = Vec::new();
    let mut wins_per_process = Vec::new();
    for output in &outputs {
        assert!(
            output.status.success(),
            "contender failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        wins_per_process.push(lines.len());
        holds.extend(lines);
    }
    holds.sort_by_key(|hold| hold["epoch"].as_u64().unwrap());
    let epochs: Vec<u64> = holds.iter().map(|h| h["epoch"].as_u64().unwrap()).collect();
    let last = *epochs.last().unwrap();
    assert!(last == 100 || last == 101, "ended at epoch {last}");
    assert_eq!(
        epochs,
        (1..=last).collect::<Vec<_>>(),
        "every epoch exactly once, none skipped"
    );
    assert!(
        holds.iter().all(|hold| hold["validated"] == true),
        "every holder still held its lease at the end of its hold"
    );
    for pair in holds.windows(2) {
        assert!(
            pair[0]["released_us"].as_u64() <= pair[1]["acquired_us"].as_u64(),
            "holds overlap: {} and {}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        wins_per_process.iter().all(|&wins| wins > 0),
        "both processes won some epochs: {wins_per_process:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_for_one_lease_100_times_on_a_local_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!("file://{}/data", dir.path().display());
    let config = node_config(dir.path(), "racer", 0, &root, "");
    race_for_one_lease(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_for_one_lease_100_times_on_s3() {
    let Some(s3) = s3_backend().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = format!("s3://{}/race", s3.bucket);
    let config = node_config(dir.path(), "racer", 0, &root, "");
    race_for_one_lease(&config).await;
    let puts = s3
        .proxy
        .stats()
        .by_op
        .get(&omnigraph_cloud_chaos::Op::Put)
        .copied();
    assert!(
        puts.unwrap_or(0) >= 200,
        "the race went through the store: {puts:?}"
    );
}

async fn metric(client: &Client, sample: &str) -> f64 {
    client.metric_value(sample).await.unwrap_or(0.0)
}

/// A node process named `name` on `root`, on a free port.
async fn start_node(dir: &Path, name: &str, root: &str) -> Server {
    let port = free_port();
    Server::start(&node_config(dir, name, port, root, ""), port).await
}

pub(crate) async fn maintenance_report(client: &Client) -> Value {
    client
        .get("/admin/repos/default/g/maintenance")
        .await
        .expect(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_writer_is_taken_over_and_does_not_write_when_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!("file://{}/data", dir.path().display());
    let a = start_node(dir.path(), "node-a", &root).await;
    let b = start_node(dir.path(), "node-b", &root).await;

    a.client.create_graph("g").await;
    a.client.insert_person("g", "from-a", 1).await.expect(200);
    // B reads freely but may not write while A holds the writer lease.
    assert_eq!(b.client.count_people("g", "main").await, 1);
    let refused = b.client.insert_person("g", "from-b-early", 2).await;
    let body = refused.expect_error(421, "not_writer", "node-a");
    assert!(
        body["error"].as_str().unwrap().contains("writer lease"),
        "{body}"
    );

    // Freeze A past its lease; B takes the lease over and writes.
    a.signal("STOP");
    let took_over = b
        .client
        .insert_person_within("g", "from-b", 3, Duration::from_secs(15))
        .await;
    assert!(
        took_over,
        "B takes the writer lease over once A's has expired"
    );
    a.signal("CONT");

    // A, resumed, must not write: it learns it lost the lease and names the new holder.
    let resumed = a.client.insert_person("g", "from-a-late", 4).await;
    resumed.expect_error(421, "not_writer", "node-b");
    let lost = eventually(Duration::from_secs(10), || {
        let a = a.client.clone();
        async move { metric(&a, "omnigraph_lease_losses_total{kind=\"writer\"}").await >= 1.0 }
    })
    .await;
    assert!(lost, "A reports the loss in its metrics");
    let report = maintenance_report(&a.client).await;
    let lost_leases = report["lost_leases"].to_string();
    assert!(lost_leases.contains("writer"), "{report}");
    let writer = report["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|lease| lease["kind"] == "writer")
        .unwrap();
    assert!(
        writer["holder"].as_str().unwrap().starts_with("node-b"),
        "{writer}"
    );
    assert!(writer["epoch"].as_u64().unwrap() >= 2, "{writer}");
    assert_eq!(writer["held_here"], false);

    // Exactly the acknowledged writes are there.
    let names = people(&b.client).await;
    assert_eq!(names, vec!["from-a".to_string(), "from-b".to_string()]);
}

/// Every person's name on main, sorted.
pub(crate) async fn people(client: &Client) -> Vec<String> {
    let body = client
        .post(
            "/graphs/g/query",
            json!({"query": "query all() { match { $p: Person } return { $p.name } }"}),
        )
        .await
        .expect(200);
    let mut names: Vec<String> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["p.name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writer_is_recovered_and_every_acknowledged_write_survives() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!("file://{}/data", dir.path().display());
    let a = start_node(dir.path(), "node-a", &root).await;
    a.client.create_graph("g").await;

    // Writers hammer A; it is killed mid-stream.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let client = a.client.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{writer}-{i}");
                let Ok(status) = client.try_insert_person("g", &name, i).await else {
                    return; // the server is gone
                };
                if status == 200 {
                    acked.lock().unwrap().push(name);
                }
            }
        }));
    }
    let enough = eventually(Duration::from_secs(60), || {
        let acked = acked.clone();
        async move { acked.lock().unwrap().len() >= 40 }
    })
    .await;
    assert!(enough, "writes were acknowledged before the kill");
    a.signal("KILL");
    for writer in writers {
        writer.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    drop(a);

    // B starts on the same root; its recovery actor waits out A's lease, then sweeps.
    let b = start_node(dir.path(), "node-b", &root).await;
    let writable = b
        .client
        .insert_person_within("g", "after-recovery", 1, Duration::from_secs(20))
        .await;
    assert!(writable, "B writes once A's lease has lapsed");
    let names = people(&b.client).await;
    for name in &acked {
        assert!(names.contains(name), "acknowledged write {name} is missing");
    }
    assert!(names.contains(&"after-recovery".to_string()));
    assert_eq!(
        b.client.count_people("g", "main").await as usize,
        names.len(),
        "count and rows agree"
    );
    let report = maintenance_report(&b.client).await;
    assert_eq!(
        report["pending_recovery_sidecars"], 0,
        "B swept before its first write: {report}"
    );
    let unacked_present = names.len() - acked.len() - 1;
    eprintln!(
        "acknowledged {}, present {} (+{unacked_present} written but not acknowledged), last recovery: {}",
        acked.len(),
        names.len(),
        report["last_recovery"]
    );
}

/// Maintenance settings that make the worker act within a test's patience.
const EAGER_MAINTENANCE: &str = "[maintenance]\ninterval = \"1s\"\ntrigger_versions = 50\n\
     trigger_fragments = 8\nkeep_versions = 4\nkeep_for = \"0s\"\nbackoff = \"1s\"\nscan_interval = \"1s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_bounds_fragments_and_versions_while_reads_and_writes_go_on() {
    let node = TestNode::start_with(EAGER_MAINTENANCE).await;
    let client = node.client();
    client.create_graph("g").await;

    // A reader runs throughout: it never sees the count go backwards or a failure.
    let reader = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut reads = 0;
            loop {
                let count = client.count_people("g", "main").await;
                assert!(count >= last, "count went from {last} to {count}");
                last = count;
                reads += 1;
                if count >= 500 {
                    return reads;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for i in 0..500 {
        client
            .insert_person("g", &format!("p{i:03}"), i)
            .await
            .expect(200);
    }
    let reads = reader.await.unwrap();
    let runs = metric(
        &client,
        "omnigraph_maintenance_runs_total{job=\"compaction\",outcome=\"done\"}",
    )
    .await;
    assert!(
        runs >= 5.0,
        "compaction ran during the writes ({runs} runs)"
    );

    // Once the writes stop, the backlog is compacted and cleaned to the bounds: at most
    // trigger_fragments fragments, and keep_versions old versions besides the current one.
    let last = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let bounded = eventually(Duration::from_secs(60), || {
        let client = client.clone();
        let last = last.clone();
        async move {
            let report = maintenance_report(&client).await;
            *last.lock().unwrap() = report.clone();
            report["backlog"]["versions_since_run"] == 0
                && report["tables"].as_array().unwrap().iter().all(|table| {
                    table["fragments"].as_u64().unwrap() <= 8
                        && table["versions"].as_u64().unwrap() <= 4 + 1
                })
        }
    })
    .await;
    let report = last.lock().unwrap().clone();
    assert!(
        bounded,
        "fragments <= 8 and versions <= 4 per table: {report:#}"
    );
    let person = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|table| table["table_key"] == "node:Person")
        .unwrap();
    assert_eq!(person["rows"], 500);
    assert!(report["last_cleanup"]["outcome"] == "done", "{report:#}");
    assert_eq!(client.count_people("g", "main").await, 500);
    let found = client
        .post(
            "/graphs/g/query",
            json!({"query": GET_PERSON, "params": {"name": "p123"}}),
        )
        .await
        .expect(200);
    assert_eq!(found["rows"][0]["p.age"], 123);
    eprintln!("{reads} reads during the writes; {runs} compactions; final {person}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_repo_costs_no_requests_once_its_backlog_is_clear() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(
        &s3,
        "idle",
        &format!("[actors]\nidle_timeout = \"1s\"\n{EAGER_MAINTENANCE}"),
    )
    .await;
    let client = node.client();
    client.create_graph("g").await;
    for i in 0..12 {
        client
            .insert_person("g", &format!("p{i}"), i)
            .await
            .expect(200);
    }
    // Evicted, then its backlog compacted (by the scanner, the repo being cold).
    let settled = eventually(Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            let evicted = metric(&client, "omnigraph_repo_evictions_total").await >= 1.0
                && metric(&client, "omnigraph_repo_actors_active").await == 0.0;
            let compacted = metric(
                &client,
                "omnigraph_maintenance_runs_total{job=\"compaction\",outcome=\"done\"}",
            )
            .await
                >= 1.0;
            evicted && compacted
        }
    })
    .await;
    assert!(settled, "the repo was evicted and its backlog compacted");
    // The last status writes and the scanner's look at them settle; then a quiet window.
    let quiet = |stats: &omnigraph_cloud_chaos::Stats| {
        stats
            .by_graph
            .get("default/g")
            .is_none_or(BTreeMap::is_empty)
            && stats
                .by_op
                .iter()
                .all(|(op, _)| *op == omnigraph_cloud_chaos::Op::List)
    };
    let mut settled = false;
    for _ in 0..20 {
        s3.proxy.reset_stats();
        tokio::time::sleep(Duration::from_secs(2)).await;
        if quiet(&s3.proxy.stats()) {
            settled = true;
            break;
        }
    }
    assert!(settled, "the node went quiet: {:?}", s3.proxy.stats());
    assert_eq!(metric(&client, "omnigraph_repo_actors_active").await, 0.0);

    s3.proxy.reset_stats();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = s3.proxy.stats();
    assert!(
        stats
            .by_graph
            .get("default/g")
            .is_none_or(BTreeMap::is_empty),
        "the idle repo's objects were touched: {stats:?}"
    );
    let not_listings: u64 = stats
        .by_op
        .iter()
        .filter(|(op, _)| **op != omnigraph_cloud_chaos::Op::List)
        .map(|(_, count)| count)
        .sum();
    assert_eq!(
        not_listings, 0,
        "only the scanner's listings while idle: {stats:?}"
    );
    let listings = stats.by_op.values().sum::<u64>();
    assert!(
        listings <= 2 * 6,
        "two listings per scan at most: {stats:?}"
    );
}
