//! The soak: a mixed workload for a long while on S3-like storage, with the process's resident
//! memory sampled against the node's memory budget.
//!
//! Readers ask point queries and one-hop traversals of random people in random graphs,
//! writers insert; the node runs with its defaults (compaction on) but a configured budget
//! and a memory tier far smaller than the data read, so that the cache evicts all along.
//! The resident set is the whole benchmark process: the node and its load generator.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const GRAPHS: usize = 6;
const PEOPLE: usize = 5_000;
const READERS: usize = 8;
const WRITERS: usize = 4;
const BUDGET: usize = 512 * 1024 * 1024;
const CACHE_MEMORY: usize = 32 * 1024 * 1024;
const SAMPLE_EVERY: Duration = Duration::from_secs(60);

pub(crate) async fn soak(backend: &Backend, minutes: u64) {
    println!(
        "=== soak: {}, {minutes} min, {GRAPHS} graphs of {PEOPLE} people, {READERS} readers, \
         {WRITERS} writers; node.memory_budget {} MiB, cache memory {} MiB + disk ===",
        backend.name(),
        BUDGET >> 20,
        CACHE_MEMORY >> 20
    );
    let cache_dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[log]\nfilter = \"error\"\n[node]\nmemory_budget = {BUDGET}\n[cache]\nmemory_bytes = {CACHE_MEMORY}\n"
    );
    let mut config = NodeConfig::load(Some(&toml), std::iter::empty()).unwrap();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_bind = None;
    config.storage.root = backend.root();
    config.cache.dir = Some(cache_dir.path().to_path_buf());
    let node = Node::start(config).await.unwrap();
    let base = format!("http://{}", node.local_addr());
    let http = reqwest::Client::new();
    for g in 0..GRAPHS {
        let graph = format!("soak{g}");
        create_graph(&http, &base, &graph).await;
        load_people(&http, &base, &graph, PEOPLE).await;
    }
    let reads = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let failures: Failures = Arc::default();
    let end = Instant::now() + Duration::from_secs(minutes * 60);
    let mut tasks = Vec::new();
    for _ in 0..READERS {
        let (http, base, reads, errors) =
            (http.clone(), base.clone(), reads.clone(), errors.clone());
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let graph = format!("soak{}", fastrand::usize(..GRAPHS));
                let name = format!("p{}", fastrand::usize(..PEOPLE));
                let query = if fastrand::bool() {
                    "get_person"
                } else {
                    "mentees_of"
                };
                let answer = http
                    .post(format!("{base}/graphs/{graph}/query"))
                    .json(&json!({"query": QUERIES, "name": query, "params": {"name": name}}))
                    .send()
                    .await;
                count(answer, &reads, &errors, &failures).await;
            }
        }));
    }
    for writer in 0..WRITERS {
        let (http, base, writes, errors) =
            (http.clone(), base.clone(), writes.clone(), errors.clone());
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                if Instant::now() >= end {
                    break;
                }
                let graph = format!("soak{}", fastrand::usize(..GRAPHS));
                let body = json!({"query": INSERT, "params": {"name": format!("w{writer}-{i}"), "age": 1}});
                let answer = http
                    .post(format!("{base}/graphs/{graph}/mutate"))
                    .json(&body)
                    .send()
                    .await;
                count(answer, &writes, &errors, &failures).await;
            }
        }));
    }
    println!(
        "  {:>6} {:>10} {:>10} {:>8} {:>13} {:>13}",
        "minute", "reads/s", "writes/s", "errors", "resident MiB", "cache MiB"
    );
    let mut peak = 0usize;
    let (mut last_reads, mut last_writes) = (0, 0);
    let mut minute = 0;
    while Instant::now() < end {
        tokio::time::sleep(SAMPLE_EVERY.min(end - Instant::now())).await;
        minute += 1;
        let resident = omnigraph_cloud::resident_bytes().unwrap_or(0);
        peak = peak.max(resident);
        let (r, w) = (
            reads.load(Ordering::Relaxed),
            writes.load(Ordering::Relaxed),
        );
        let held = node.registry().store().cache().metrics().stats().held_bytes;
        println!(
            "  {minute:>6} {:>10.1} {:>10.1} {:>8} {:>13.0} {:>13.1}",
            (r - last_reads) as f64 / SAMPLE_EVERY.as_secs_f64(),
            (w - last_writes) as f64 / SAMPLE_EVERY.as_secs_f64(),
            errors.load(Ordering::Relaxed),
            resident as f64 / 1048576.0,
            held as f64 / 1048576.0,
        );
        (last_reads, last_writes) = (r, w);
    }
    for task in tasks {
        let _ = task.await;
    }
    println!(
        "  peak resident {:.0} MiB of a {} MiB budget: {:.0}% ({})",
        peak as f64 / 1048576.0,
        BUDGET >> 20,
        100.0 * peak as f64 / BUDGET as f64,
        if peak <= BUDGET + BUDGET / 10 {
            "within the budget plus 10%"
        } else {
            "ABOVE the budget plus 10%"
        }
    );
    for failure in failures.lock().unwrap().iter() {
        println!("  error: {failure}");
    }
    node.shutdown().await.unwrap();
}

/// The first few errors, as the client saw them.
type Failures = Arc<std::sync::Mutex<Vec<String>>>;

/// Counts an answer as done or failed, keeping the first few failures.
async fn count(
    answer: reqwest::Result<reqwest::Response>,
    done: &AtomicUsize,
    errors: &AtomicUsize,
    failures: &Failures,
) {
    let failure = match answer {
        Ok(response) if response.status() == 200 => {
            done.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(response) => format!(
            "{}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ),
        Err(err) => err.to_string(),
    };
    errors.fetch_add(1, Ordering::Relaxed);
    let mut kept = failures.lock().unwrap();
    if kept.len() < 5 {
        kept.push(failure);
    }
}
