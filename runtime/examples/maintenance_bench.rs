//! Maintenance benchmark, side by side in one run on local storage:
//!
//! - **fresh**: a graph whose people arrive in one load (few fragments, few versions);
//! - **worker off**: the same people as single-row inserts, one publish each, on a node with
//!   the `serve` role only (nothing compacts);
//! - **worker on**: the same inserts on a node with the `worker` role too (compaction and
//!   cleanup with the default triggers and `keep_versions`, `keep_for = 0s`).
//!
//! Then the same point query many times on each: p50 and p99, and the graph's object count,
//! fragments and stored versions of the Person table, from the admin maintenance report.
//!
//! Run: `cargo run -p omnigraph-cloud --example maintenance_bench -- [--inserts N] [--queries N]`
//! (defaults 2000 and 500). Results go to docs/benchmarks.md.

use std::time::Duration;

use omnigraph_cloud::Node;
use omnigraph_cloud_config::{NodeConfig, StorageRoot};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The repository's example schema (the README walkthrough's).
const SCHEMA: &str = include_str!("../../examples/team.pg");
const GET_PERSON: &str = "query get_person($name: String) { match { $p: Person { name: $name } } return { $p.name, $p.age } }";
const INSERT: &str =
    "query ins($name: String, $age: I32) { insert Person { name: $name, age: $age } }";

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut inserts, mut queries) = (2000usize, 500usize);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--inserts", Some(v)) => inserts = v,
            ("--queries", Some(v)) => queries = v,
            _ => panic!("usage: maintenance_bench [--inserts N] [--queries N]"),
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(inserts, queries));
}

struct Measured {
    name: &'static str,
    insert_secs: f64,
    p50: Duration,
    p99: Duration,
    report: Value,
}

async fn run(inserts: usize, queries: usize) {
    let profile = if cfg!(debug_assertions) {
        "dev profile (dependencies optimised)"
    } else {
        "release"
    };
    println!(
        "maintenance benchmark: {inserts} inserts, {queries} point queries, local disk, {profile}"
    );
    let fresh = measure("fresh (one load)", Mode::Fresh, inserts, queries).await;
    let off = measure(
        "worker off",
        Mode::Inserts { worker: false },
        inserts,
        queries,
    )
    .await;
    let on = measure(
        "worker on",
        Mode::Inserts { worker: true },
        inserts,
        queries,
    )
    .await;
    let settled = measure("worker on, settled", Mode::Settled, inserts, queries).await;

    println!();
    println!(
        "| repo | writes took | read p50 | read p99 | p50 vs fresh | p99 vs fresh | objects | Person fragments | Person versions stored |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for m in [&fresh, &off, &on, &settled] {
        let person = m.report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table_key"] == "node:Person")
            .cloned()
            .unwrap_or(Value::Null);
        println!(
            "| {} | {:.1} s | {:.2} ms | {:.2} ms | {:.2}x | {:.2}x | {} | {} | {} |",
            m.name,
            m.insert_secs,
            ms(m.p50),
            ms(m.p99),
            m.p50.as_secs_f64() / fresh.p50.as_secs_f64(),
            m.p99.as_secs_f64() / fresh.p99.as_secs_f64(),
            m.report["files"],
            person["fragments"],
            person["versions"],
        );
    }
    println!();
    println!(
        "worker on, last compaction: {}; last cleanup: {}",
        on.report["last_compaction"]["message"], on.report["last_cleanup"]["message"]
    );
}

enum Mode {
    Fresh,
    Inserts {
        worker: bool,
    },
    /// As `worker on`, then reads once the worker has compacted the last backlog.
    Settled,
}

async fn measure(name: &'static str, mode: Mode, inserts: usize, queries: usize) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let roles = match mode {
        Mode::Inserts { worker: false } => "[\"serve\"]",
        _ => "[\"serve\", \"worker\"]",
    };
    let mut config = NodeConfig::load(
        Some(&format!(
            "[node]\nroles = {roles}\n[maintenance]\nkeep_for = \"0s\"\n[log]\nfilter = \"warn\"\n"
        )),
        std::iter::empty(),
    )
    .unwrap();
    config.storage.root = StorageRoot::File(dir.path().to_path_buf());
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_bind = None;
    let node = Node::start(config).await.unwrap();
    let base = format!("http://{}", node.local_addr());
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/graphs"))
        .json(&json!({"graph_id": "g", "schema_source": SCHEMA}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let started = Instant::now();
    match mode {
        Mode::Fresh => {
            let data: String = (0..inserts)
                .map(|i| {
                    format!(
                        "{{\"type\":\"Person\",\"data\":{{\"name\":\"p{i}\",\"age\":{}}}}}\n",
                        i % 90
                    )
                })
                .collect();
            let response = http
                .post(format!("{base}/graphs/g/load"))
                .json(&json!({"data": data, "mode": "append"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
        Mode::Inserts { .. } | Mode::Settled => {
            for i in 0..inserts {
                let response = http
                    .post(format!("{base}/graphs/g/mutate"))
                    .json(&json!({"query": INSERT, "params": {"name": format!("p{i}"), "age": (i % 90) as i64}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
                if (i + 1) % 500 == 0 {
                    eprintln!(
                        "  {name}: {} inserts, {:.0} s",
                        i + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
    let insert_secs = started.elapsed().as_secs_f64();
    if let Mode::Settled = mode {
        loop {
            let report = maintenance_report(&http, &base).await;
            if report["backlog"]["versions_since_run"] == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "  {name}: backlog compacted {:.0} s after the first insert",
            started.elapsed().as_secs_f64()
        );
    }

    let mut samples = Vec::with_capacity(queries);
    for i in 0..queries {
        let who = format!("p{}", (i * 7919) % inserts);
        let started = Instant::now();
        let response = http
            .post(format!("{base}/graphs/g/query"))
            .json(&json!({"query": GET_PERSON, "params": {"name": who}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["row_count"], 1);
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let report = maintenance_report(&http, &base).await;
    let measured = Measured {
        name,
        insert_secs,
        p50: at(0.5),
        p99: at(0.99),
        report,
    };
    node.shutdown().await.unwrap();
    measured
}

async fn maintenance_report(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/admin/repos/default/g/maintenance"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
