//! Single-node benchmark, everything measured side by side in one run:
//!
//! 1. warm query latency through the HTTP path vs the same query on the engine in-process
//!    (our overhead);
//! 2. cold first-request latency (activation) vs the warm request right after it;
//! 3. insert throughput with 1, 8 and 32 concurrent clients;
//! 4. on S3, what a cache miss costs (`miss.rs`);
//! 5. with `--noisy`, a quiet tenant's latency beside a noisy one (`noisy.rs`);
//! 6. with `--stale`, on S3, a stale-ok read against a strong one (`stale.rs`);
//!
//! each on local storage and, with `--s3`, on a real S3 server (moto, installed by
//! scripts/test.sh) behind the fault-injecting proxy at S3-like latency (GET p50 60 ms,
//! PUT p50 100 ms, LIST 80 ms, HEAD 30 ms, DELETE 60 ms, with jitter).
//!
//! Run: `cargo run -p omnigraph-cloud --example bench -- [--s3] [--quick] [--writes]
//! [--no-cache] [--cold] [--miss] [--soak MINUTES] [--cluster] [--noisy] [--stale]`:
//! - `--no-cache`: the local-disk run without the cache tier;
//! - `--cold`: only the cold first requests;
//! - `--miss`: only the cost of a cache miss, on S3;
//! - `--soak`: only the soak, on S3 (`soak.rs`);
//! - `--noisy`: only the noisy-neighbour benchmark, on local disk;
//! - `--cluster`: only the cluster benchmark, on local disk (`cluster.rs`; its failover part
//!   runs the `omnigraph-cloud` binary, so build it first).
//!
//! `RUST_LOG` turns on the node's logs (and, with `og_s3_proxy=debug`, one line per request
//! the proxy sees).
//! Results go to docs/benchmarks.md.

use std::sync::Arc;
use std::time::Duration;

use omnigraph::db::{Omnigraph, ReadTarget};
use omnigraph_cloud::Node;
use omnigraph_cloud_chaos::{FaultProxy, Faults, Latency, Op, S3Server};
use omnigraph_cloud_config::{NodeConfig, StorageRoot};
use omnigraph_compiler::{JsonParamMode, find_named_query, json_params_to_param_map};
use serde_json::{Value, json};
use tokio::time::Instant;

mod client;
mod cluster;
mod cold;
mod miss;
mod noisy;
mod soak;
mod stale;
mod writes;

use client::{create_graph, load_people, ms, percentiles, query_engine, query_http, ratio};
use cold::{WARM_SET_ID, cold_first_requests};
use miss::miss_cost;
use soak::soak;
use writes::{insert_window, write_bench};

/// The repository's example schema and queries (the README walkthrough's).
const SCHEMA: &str = include_str!("../../../examples/team.pg");
const QUERIES: &str = include_str!("../../../examples/team.gq");
const INSERT: &str =
    "query ins($name: String, $age: I32) { insert Person { name: $name, age: $age } }";

/// Errors only in the log.
const LOG_ERRORS: &str = "[log]\nfilter = \"error\"\n";
/// No compaction during a run (its requests would be counted as a query's), and no logs.
const QUIET_NODE: &str = "[log]\nfilter = \"error\"\n[maintenance]\ninterval = \"1h\"\n\
    trigger_versions = 1000000\ntrigger_fragments = 1000000\ntrigger_bytes = 1099511627776\n";

struct Settings {
    people: usize,
    query_iterations: usize,
    cold_graphs: usize,
    insert_window: Duration,
    /// Whether the node reads through its cache tier.
    cache: bool,
    /// Only the cold first requests (section 2).
    only_cold: bool,
}

/// Where a run keeps its graphs.
enum Backend {
    Local(tempfile::TempDir),
    S3 { bucket: String, prefix: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Local(_) => "local disk",
            Backend::S3 { .. } => "S3 (moto) behind the proxy, S3-like latency",
        }
    }

    fn root(&self) -> StorageRoot {
        match self {
            Backend::Local(dir) => StorageRoot::File(dir.path().to_path_buf()),
            Backend::S3 { bucket, prefix } => StorageRoot::S3 {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
        }
    }

    fn graph_uri(&self, graph: &str) -> String {
        match self {
            Backend::Local(dir) => dir
                .path()
                .join(format!("tenants/default/graphs/{graph}.omni"))
                .display()
                .to_string(),
            Backend::S3 { bucket, prefix } => {
                format!("s3://{bucket}/{prefix}/tenants/default/graphs/{graph}.omni")
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let only_cold = args.iter().any(|arg| arg == "--cold");
    let only_miss = args.iter().any(|arg| arg == "--miss");
    let only_stale = args.iter().any(|arg| arg == "--stale");
    let quick = args.iter().any(|arg| arg == "--quick");
    let with_s3 = args.iter().any(|arg| arg == "--s3");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let writes_only = args.iter().any(|arg| arg == "--writes");
    let cluster_only = args.iter().any(|arg| arg == "--cluster");
    let soak_minutes: Option<u64> = args.iter().position(|arg| arg == "--soak").map(|at| {
        args.get(at + 1)
            .and_then(|minutes| minutes.parse().ok())
            .expect("--soak MINUTES")
    });
    runtime.block_on(async move {
        println!("omnigraph-cloud single-node benchmark ({})", profile());
        println!();
        let local = Backend::Local(tempfile::tempdir().unwrap());
        if cluster_only {
            cluster::cluster_bench(quick).await;
            return;
        }
        if args.iter().any(|arg| arg == "--noisy") {
            noisy::noisy_neighbours(quick).await;
            return;
        }
        if soak_minutes.is_some() || only_miss || only_stale {
            // Only the soak, the miss cost or stale reads, on S3 below.
        } else if writes_only {
            write_bench(&local, if quick { 2 } else { 5 }).await;
        } else {
            let mut on_disk = settings(quick, false, only_cold);
            on_disk.cache = !args.iter().any(|arg| arg == "--no-cache");
            run(&local, &on_disk, None).await;
        }
        if with_s3 || soak_minutes.is_some() || only_miss || only_stale {
            let server = S3Server::start()
                .await
                .expect("moto (run scripts/test.sh once to install it)");
            server.create_bucket("bench").await.unwrap();
            let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), server.endpoint())
                .await
                .unwrap();
            for (name, value) in omnigraph_cloud_chaos::aws_env_for(&proxy.endpoint()) {
                // SAFETY: set before any node or engine exists; nothing reads them concurrently.
                unsafe { std::env::set_var(name, value) };
            }
            let latency = |p50_ms, jitter_ms| Latency { p50_ms, jitter_ms };
            proxy.set_faults(Faults {
                latency: [
                    (Op::Get, latency(60, 20)),
                    (Op::Put, latency(100, 30)),
                    (Op::List, latency(80, 20)),
                    (Op::Head, latency(30, 10)),
                    (Op::Delete, latency(60, 20)),
                    (Op::Post, latency(100, 30)),
                ]
                .into(),
                ..Faults::default()
            });
            let s3 = Backend::S3 {
                bucket: "bench".into(),
                prefix: "run".into(),
            };
            if let Some(minutes) = soak_minutes {
                soak(&s3, minutes).await;
            } else if only_miss {
                miss_cost(&s3).await;
            } else if only_stale {
                stale::stale_reads(&s3, &proxy, quick).await;
            } else if writes_only {
                write_bench(&s3, if quick { 5 } else { 15 }).await;
            } else {
                // Side by side: the same workload without the cache tier, then with it.
                let uncached = Backend::S3 {
                    bucket: "bench".into(),
                    prefix: "uncached".into(),
                };
                let mut no_cache = settings(quick, true, only_cold);
                no_cache.cache = false;
                run(&uncached, &no_cache, Some(&proxy)).await;
                run(&s3, &settings(quick, true, only_cold), Some(&proxy)).await;
                if !only_cold {
                    let miss = Backend::S3 {
                        bucket: "bench".into(),
                        prefix: "miss".into(),
                    };
                    miss_cost(&miss).await;
                }
            }
            let stats = proxy.stats();
            println!(
                "S3 requests seen by the proxy during the S3 run: {:?}",
                stats.by_op
            );
        }
    });
}

fn settings(quick: bool, s3: bool, only_cold: bool) -> Settings {
    let settings = match (quick, s3) {
        (true, _) => Settings {
            people: 200,
            query_iterations: 20,
            cold_graphs: 2,
            insert_window: Duration::from_secs(3),
            cache: true,
            only_cold: false,
        },
        (false, false) => Settings {
            people: 2000,
            query_iterations: 300,
            cold_graphs: 8,
            insert_window: Duration::from_secs(10),
            cache: true,
            only_cold: false,
        },
        (false, true) => Settings {
            people: 2000,
            query_iterations: 60,
            cold_graphs: 5,
            insert_window: Duration::from_secs(20),
            cache: true,
            only_cold: false,
        },
    };
    Settings {
        only_cold,
        ..settings
    }
}

/// `proxy`, when the store is behind one, counts the requests of a warm query.
async fn run(backend: &Backend, settings: &Settings, proxy: Option<&FaultProxy>) {
    let cache = if settings.cache {
        "cache on"
    } else {
        "cache off"
    };
    println!("=== storage: {}, {cache} ===", backend.name());
    // On S3, the requests per query are counted: no compaction may add its own meanwhile.
    let node_config = if proxy.is_some() {
        QUIET_NODE
    } else {
        LOG_ERRORS
    };
    // The disk tier outlives the node restart below, as an NVMe directory would.
    let cache_dir = tempfile::tempdir().unwrap();
    let cache_path = cache_dir.path();
    let start_node = |id: Option<&'static str>| async move {
        let mut config = NodeConfig::load(Some(node_config), std::iter::empty()).unwrap();
        config.server.bind = "127.0.0.1:0".parse().unwrap();
        config.server.metrics_bind = None;
        config.storage.root = backend.root();
        config.cache.enabled = settings.cache;
        config.cache.dir = Some(cache_path.to_path_buf());
        config.node.id = id.map(str::to_string);
        Node::start(config).await.unwrap()
    };
    // Its warm set is recorded at shutdown, for the pre-warmed restart of section 2.
    let node = start_node(Some(WARM_SET_ID)).await;
    let base = format!("http://{}", node.local_addr());
    let http = reqwest::Client::new();
    if !settings.only_cold {
        warm_queries(backend, settings, proxy, &http, &base, &node).await;
    }
    let node = cold_first_requests(settings, &http, node, start_node).await;
    let base = format!("http://{}", node.local_addr());
    if !settings.only_cold {
        inserts(settings, proxy, &http, &base).await;
    }
    node.shutdown().await.unwrap();
}

/// Section 1: a warm point query over HTTP against the same query on the engine in-process.
async fn warm_queries(
    backend: &Backend,
    settings: &Settings,
    proxy: Option<&FaultProxy>,
    http: &reqwest::Client,
    base: &str,
    node: &Node,
) {
    // --- 1. warm query: HTTP vs engine in-process ---
    create_graph(http, base, "bench").await;
    load_people(http, base, "bench", settings.people).await;
    let engine = Arc::new(
        Omnigraph::open_read_only(&backend.graph_uri("bench"))
            .await
            .unwrap(),
    );
    let decl = find_named_query(QUERIES, "get_person").unwrap();
    let names: Vec<String> = (0..settings.query_iterations)
        .map(|i| format!("p{}", (i * 7919) % settings.people))
        .collect();
    for name in names.iter().take(5) {
        query_engine(&engine, &decl.params, name).await;
        query_http(http, base, "bench", name).await;
    }
    let before = node.registry().store().cache().metrics().stats();
    let mut engine_samples = Vec::new();
    let mut http_samples = Vec::new();
    // Interleaved, so both see the same machine conditions.
    for name in &names {
        let started = Instant::now();
        query_engine(&engine, &decl.params, name).await;
        engine_samples.push(started.elapsed());
        let started = Instant::now();
        query_http(http, base, "bench", name).await;
        http_samples.push(started.elapsed());
    }
    let (engine_p50, engine_p99) = percentiles(&mut engine_samples);
    let (http_p50, http_p99) = percentiles(&mut http_samples);
    println!(
        "warm point query ({} rows in Person, {} iterations, interleaved)",
        settings.people,
        names.len()
    );
    println!("  {:<28} {:>10} {:>10}", "", "p50", "p99");
    println!(
        "  {:<28} {:>10} {:>10}",
        "engine in-process",
        ms(engine_p50),
        ms(engine_p99)
    );
    println!(
        "  {:<28} {:>10} {:>10}",
        "omnigraph-cloud over HTTP",
        ms(http_p50),
        ms(http_p99)
    );
    println!(
        "  {:<28} {:>10} {:>10}",
        "ratio HTTP / engine",
        ratio(http_p50, engine_p50),
        ratio(http_p99, engine_p99)
    );
    if settings.cache {
        let after = node.registry().store().cache().metrics().stats();
        let hit = after.hit_bytes - before.hit_bytes;
        let missed = after.miss_bytes - before.miss_bytes;
        println!(
            "  {:<28} {:>9.1}% ({hit} of {} bytes; the engine in-process has no cache)",
            "read bytes from the cache",
            100.0 * hit as f64 / (hit + missed).max(1) as f64,
            hit + missed
        );
    }
    if let Some(proxy) = proxy {
        // What a warm query costs in store requests: the cache tier's target is none.
        // The graph's own requests: lease renewals and the other graphs' work are not a
        // query's cost.
        let per_query = |stats: omnigraph_cloud_chaos::Stats, queries: usize| {
            let ops = stats
                .by_graph
                .get("default/bench")
                .cloned()
                .unwrap_or_default();
            if ops.is_empty() {
                return "none".to_string();
            }
            ops.iter()
                .map(|(op, count)| format!("{op:?} {:.1}", *count as f64 / queries as f64))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sample = &names[..names.len().min(20)];
        proxy.reset_stats();
        for name in sample {
            query_engine(&engine, &decl.params, name).await;
        }
        let engine_requests = per_query(proxy.stats(), sample.len());
        proxy.reset_stats();
        for name in sample {
            query_http(http, base, "bench", name).await;
        }
        let http_requests = per_query(proxy.stats(), sample.len());
        println!(
            "  store requests per warm query ({} queries each)",
            sample.len()
        );
        println!("  {:<28} {engine_requests}", "engine in-process");
        println!("  {:<28} {http_requests}", "omnigraph-cloud over HTTP");
    }
    println!();
}

/// Section 3: insert throughput and latency with 1, 8 and 32 clients on one graph each.
async fn inserts(
    settings: &Settings,
    proxy: Option<&FaultProxy>,
    http: &reqwest::Client,
    base: &str,
) {
    println!(
        "single-row insert mutations on one graph, {:?} per level (answers within the window)",
        settings.insert_window
    );
    println!(
        "  {:<10} {:>12} {:>10} {:>10} {:>8}",
        "clients", "inserts/s", "p50", "p99", "errors"
    );
    let mut per_insert = None;
    for clients in [1usize, 8, 32] {
        let graph = format!("ins{clients}");
        create_graph(http, base, &graph).await;
        if let Some(proxy) = proxy {
            proxy.reset_stats();
        }
        let (done, errors, mut samples) =
            insert_window(http, base, &graph, clients, settings.insert_window).await;
        if let (Some(proxy), 1) = (proxy, clients) {
            let ops = proxy
                .stats()
                .by_graph
                .get(&format!("default/{graph}"))
                .cloned();
            per_insert = ops.map(|ops| {
                ops.iter()
                    .map(|(op, n)| format!("{op:?} {:.1}", *n as f64 / done.max(1) as f64))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        }
        let rate = done as f64 / settings.insert_window.as_secs_f64();
        let (p50, p99) = percentiles(&mut samples);
        println!(
            "  {:<10} {:>12.1} {:>10} {:>10} {:>8}",
            clients,
            rate,
            ms(p50),
            ms(p99),
            errors
        );
    }
    if let Some(per_insert) = per_insert {
        println!("  store requests per single insert (1 client): {per_insert}");
    }
    println!();
}

/// The dev profile optimises dependencies (Lance, DataFusion) but not our crates; a build
/// with debug assertions off is the release profile.
fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "dev profile: dependencies optimised"
    } else {
        "release"
    }
}
