//! The cluster benchmark (`--cluster`), on local disk, side by side in one run:
//!
//! 1. forwarding overhead: a 1 KiB write sent to the writer-lease holder vs the same write
//!    sent to another node, which forwards it, in pairs: inserts the holder publishes, and
//!    inserts into a missing branch, which the holder refuses without a publish (the hop
//!    alone);
//! 2. aggregate insert throughput: 3 nodes each writing their own graph vs 1 node writing
//!    the 3 graphs (all nodes share this machine's cores);
//! 3. failover: kill -9 of the holder (a real process), until a write through another node
//!    succeeds, over several trials;
//! 4. lease renewal: the PUTs per second of an idle node keeping N graphs warm (with no
//!    writes and no maintenance, every PUT renews a lease), with each lease renewed itself
//!    and with the leases tied to the node lease.

use std::process::{Command, Stdio};

use super::*;

const SECRET: &str = "bench-cluster-secret-0123456789abcdef";

pub(crate) async fn cluster_bench(quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    println!("=== cluster: nodes sharing one local-disk root ===");
    forwarding_overhead(dir.path(), if quick { 30 } else { 150 }).await;
    aggregate_throughput(dir.path(), Duration::from_secs(if quick { 3 } else { 10 })).await;
    failover(dir.path(), if quick { 3 } else { 20 });
    renewals(dir.path(), if quick { 20 } else { 100 }).await;
}

async fn node(dir: &std::path::Path, id: &str, root: &str) -> Node {
    let toml = format!(
        "{QUIET_NODE}[node]\nid = \"{id}\"\n[cluster]\nsecret_file = {:?}\n",
        dir.join("secret").display().to_string()
    );
    let mut config = NodeConfig::load(Some(&toml), std::iter::empty()).unwrap();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_bind = None;
    config.storage.root = StorageRoot::File(dir.join(root));
    Node::start(config).await.unwrap()
}

fn base(node: &Node) -> String {
    format!("http://{}", node.local_addr())
}

async fn insert(http: &reqwest::Client, base: &str, graph: &str, name: &str) -> reqwest::Response {
    http.post(format!("{base}/graphs/{graph}/mutate"))
        .json(&json!({"query": INSERT, "params": {"name": name, "age": 1}}))
        .send()
        .await
        .unwrap()
}

async fn forwarding_overhead(dir: &std::path::Path, iterations: usize) {
    let holder = node(dir, "holder", "fwd").await;
    let other = node(dir, "other", "fwd").await;
    let http = reqwest::Client::new();
    create_graph(&http, &base(&holder), "fwd").await;
    assert_eq!(
        insert(&http, &base(&holder), "fwd", "first").await.status(),
        200
    );
    // A name of 1 KiB makes the request body about 1.1 KiB.
    let padding = "x".repeat(1024);
    println!(
        "  1. forwarding, 1 KiB writes, {iterations} pairs (to the holder, then to another node):"
    );
    println!(
        "     {:<40} {:>10} {:>10} {:>14}",
        "", "p50", "p99", "paired p50 +"
    );
    // (a) Inserts: the holder publishes each. The graph grows during the run, so the
    // overhead is the median of each pair's difference, not a difference of medians.
    // (b) Inserts into a branch that does not exist: the holder answers 404 without a
    // publish, so the pair measures the hop itself (the local lease check, the connection,
    // the holder's authentication and policy, and the relay).
    for (label, branch, status) in [
        ("inserts (published)", "main", 200),
        ("inserts to a missing branch (404)", "nope", 404),
    ] {
        let (mut direct, mut forwarded, mut paired) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..iterations {
            let mut pair = [Duration::ZERO; 2];
            for (slot, target) in [&holder, &other].into_iter().enumerate() {
                let started = Instant::now();
                let response = http
                    .post(format!("{}/graphs/fwd/mutate", base(target)))
                    .json(&json!({"query": INSERT, "branch": branch,
                        "params": {"name": format!("{i}-{padding}"), "age": 1}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), status);
                let through = response.headers().contains_key("x-omnigraph-forwarded-to");
                assert_eq!(through, slot == 1);
                pair[slot] = started.elapsed();
            }
            direct.push(pair[0]);
            forwarded.push(pair[1]);
            paired.push(pair[1].as_secs_f64() - pair[0].as_secs_f64());
        }
        let (direct_p50, direct_p99) = percentiles(&mut direct);
        let (forwarded_p50, forwarded_p99) = percentiles(&mut forwarded);
        paired.sort_by(f64::total_cmp);
        let overhead = paired[paired.len() / 2];
        println!(
            "     {:<40} {:>10} {:>10}",
            format!("{label}, to the holder"),
            ms(direct_p50),
            ms(direct_p99)
        );
        println!(
            "     {:<40} {:>10} {:>10} {:>14}",
            format!("{label}, forwarded"),
            ms(forwarded_p50),
            ms(forwarded_p99),
            format!("{:.2} ms", overhead * 1000.0)
        );
    }
    holder.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}

async fn aggregate_throughput(dir: &std::path::Path, window: Duration) {
    const CLIENTS: usize = 16;
    let http = reqwest::Client::new();
    let mut rates = Vec::new();
    for nodes in [1usize, 3] {
        let root = format!("agg{nodes}");
        let mut started = Vec::new();
        for i in 0..nodes {
            started.push(node(dir, &format!("agg{nodes}-{i}"), &root).await);
        }
        // Graph i is written through node i % nodes, which takes its lease.
        let graphs: Vec<(String, String)> = (0..3)
            .map(|g| (format!("g{g}"), base(&started[g % nodes])))
            .collect();
        for (graph, base) in &graphs {
            create_graph(&http, base, graph).await;
            assert_eq!(insert(&http, base, graph, "first").await.status(), 200);
        }
        let runs = graphs.iter().map(|(graph, base)| {
            let http = http.clone();
            async move { insert_window(&http, base, graph, CLIENTS, window).await }
        });
        let results = futures::future::join_all(runs).await;
        let done: usize = results.iter().map(|(done, _, _)| done).sum();
        let errors: usize = results.iter().map(|(_, errors, _)| errors).sum();
        let rate = done as f64 / window.as_secs_f64();
        rates.push(rate);
        println!(
            "  2. {nodes} node(s), 3 graphs x {CLIENTS} clients: {rate:.1} inserts/s ({errors} errors)"
        );
        for node in started {
            node.shutdown().await.unwrap();
        }
    }
    println!(
        "     3 nodes / 1 node: {:.2}x",
        rates[1] / rates[0].max(0.001)
    );
}

/// Real processes: the holder is killed with SIGKILL, and a write through another node is
/// retried until it succeeds.
fn failover(dir: &std::path::Path, trials: usize) {
    let Some(binary) = node_binary() else {
        println!("  3. failover: skipped, build the binary first (cargo build -p omnigraph-cloud)");
        return;
    };
    let runtime = tokio::runtime::Handle::current();
    let mut samples = Vec::new();
    for trial in 0..trials {
        let root = dir.join(format!("failover{trial}"));
        let ports = [free_port(), free_port()];
        let mut children: Vec<_> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| spawn_node(&binary, dir, &root, &format!("f{i}"), *port))
            .collect();
        let bases: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let took = tokio::task::block_in_place(|| {
            runtime.block_on(async {
                let http = reqwest::Client::new();
                for base in &bases {
                    wait_ready(&http, base).await;
                }
                create_graph(&http, &bases[0], "g").await;
                assert_eq!(insert(&http, &bases[0], "g", "first").await.status(), 200);
                children[0].kill().unwrap();
                let killed = Instant::now();
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let sent = http
                        .post(format!("{}/graphs/g/mutate", bases[1]))
                        .json(&json!({"query": INSERT, "params": {"name": format!("a{attempt}"), "age": 1}}))
                        .send()
                        .await;
                    if matches!(sent, Ok(r) if r.status() == 200) {
                        break killed.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
        samples.push(took);
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let (p50, _) = percentiles(&mut samples);
    let max = samples.iter().max().copied().unwrap_or_default();
    println!(
        "  3. failover after kill -9 of the holder (lease ttl 8 s, margin 3 s), {trials} trials: \
         p50 {}, max {}",
        ms(p50),
        ms(max)
    );
}

async fn renewals(dir: &std::path::Path, graphs: usize) {
    println!("  4. lease renewals of an idle node keeping {graphs} graphs warm (ttl 8 s):");
    let mut rates = Vec::new();
    for tied in [false, true] {
        // With gossip, the node holds a node lease and its repo leases hang off it.
        let gossip = if tied {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            format!("[cluster]\ngossip_bind = \"127.0.0.1:{port}\"\n")
        } else {
            String::new()
        };
        let toml = format!(
            "{QUIET_NODE}[node]\nid = \"renew-{tied}\"\n[leases]\nttl = \"8s\"\nsafety_margin = \"3s\"\n{gossip}"
        );
        let mut config = NodeConfig::load(Some(&toml), std::iter::empty()).unwrap();
        config.server.bind = "127.0.0.1:0".parse().unwrap();
        config.server.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        config.storage.root = StorageRoot::File(dir.join(format!("renewals-{tied}")));
        let node = Node::start(config).await.unwrap();
        let http = reqwest::Client::new();
        for g in 0..graphs {
            let graph = format!("r{g}");
            create_graph(&http, &base(&node), &graph).await;
            let written = insert(&http, &base(&node), &graph, "x").await;
            assert_eq!(written.status(), 200);
        }
        let metrics = format!("http://{}/metrics", node.metrics_addr().unwrap());
        let puts = || async {
            let text = http
                .get(&metrics)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .filter(|line| {
                    line.starts_with("omnigraph_object_store_requests_total")
                        && line.contains("op=\"Put\"")
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        let window = Duration::from_secs(20);
        let before = puts().await;
        tokio::time::sleep(window).await;
        let rate = (puts().await - before) / window.as_secs_f64();
        let how = if tied {
            "tied to the node lease (gossip on)"
        } else {
            "each lease renewed itself (no gossip)"
        };
        println!(
            "     {how:<40} {rate:>6.1} PUTs/s ({:.3} per graph)",
            rate / graphs as f64
        );
        rates.push(rate);
        node.shutdown().await.unwrap();
    }
    println!(
        "     tied / untied: {:.3}x",
        rates[1] / rates[0].max(f64::MIN_POSITIVE)
    );
}

fn node_binary() -> Option<std::path::PathBuf> {
    let examples = std::env::current_exe().ok()?;
    let binary = examples.parent()?.parent()?.join("omnigraph-cloud");
    binary.exists().then_some(binary)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_node(
    binary: &std::path::Path,
    dir: &std::path::Path,
    root: &std::path::Path,
    id: &str,
    port: u16,
) -> std::process::Child {
    let config = dir.join(format!("{id}-{port}.toml"));
    std::fs::write(
        &config,
        format!(
            "{QUIET_NODE}[node]\nid = \"{id}\"\n[server]\nbind = \"127.0.0.1:{port}\"\nmetrics_bind = \"off\"\n\
             [storage]\nroot = \"file://{}\"\n[leases]\nttl = \"8s\"\nsafety_margin = \"3s\"\n\
             [cluster]\nsecret_file = {:?}\n",
            root.display(),
            dir.join("secret").display().to_string()
        ),
    )
    .unwrap();
    Command::new(binary)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} not ready");
}
