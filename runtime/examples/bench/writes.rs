//! The write benchmark: single-row inserts from many clients, coalescing on and off.

use super::*;

/// Insert throughput with the write coalescer on and off, 1 to 256 clients. Each level runs
/// on a fresh node and graph for `window_secs`; only answers within the window count, and the
/// node is then stopped (queued writes are abandoned) so that levels do not overlap.
pub(crate) async fn write_bench(backend: &Backend, window_secs: u64) {
    let window = Duration::from_secs(window_secs);
    println!(
        "=== storage: {} — single-row inserts on one graph, {window_secs}s per level ===",
        backend.name()
    );
    println!(
        "  {:<9} {:>8} {:>11} {:>10} {:>10} {:>10} {:>12}",
        "coalesce", "clients", "inserts/s", "p50", "p99", "publishes", "writes/pub"
    );
    let mut rates: Vec<(bool, usize, f64)> = Vec::new();
    for coalesce in [true, false] {
        for clients in [1usize, 8, 64, 256] {
            let toml = format!(
                "[log]\nfilter = \"error\"\n[server]\nshutdown_grace = \"1s\"\n[writes]\ncoalesce = {coalesce}\n"
            );
            let mut config = NodeConfig::load(Some(&toml), std::iter::empty()).unwrap();
            config.server.bind = "127.0.0.1:0".parse().unwrap();
            config.server.metrics_bind = None;
            config.storage.root = backend.root();
            let node = Node::start(config).await.unwrap();
            let base = format!("http://{}", node.local_addr());
            let http = reqwest::Client::new();
            let graph = format!("w{}-{clients}", if coalesce { "on" } else { "off" });
            create_graph(&http, &base, &graph).await;
            let before = commit_count(&http, &base, &graph).await;
            let (done, errors, mut samples) =
                insert_window(&http, &base, &graph, clients, window).await;
            let publishes = commit_count(&http, &base, &graph).await - before;
            let rate = done as f64 / window.as_secs_f64();
            let (p50, p99) = percentiles(&mut samples);
            let per_publish = if publishes == 0 {
                0.0
            } else {
                done as f64 / publishes as f64
            };
            let on = if coalesce { "on" } else { "off" };
            let errors = if errors > 0 {
                format!("  ({errors} errors)")
            } else {
                String::new()
            };
            println!(
                "  {on:<9} {clients:>8} {rate:>11.1} {:>10} {:>10} {publishes:>10} {per_publish:>12.1}{errors}",
                ms(p50),
                ms(p99),
            );
            rates.push((coalesce, clients, rate));
            let _ = node.shutdown().await;
        }
    }
    println!("  speed-up, coalescer on / off:");
    for clients in [1usize, 8, 64, 256] {
        let rate = |mode| {
            rates
                .iter()
                .find(|(c, n, _)| *c == mode && *n == clients)
                .map(|r| r.2)
                .unwrap_or(0.0)
        };
        let (on, off) = (rate(true), rate(false));
        let speedup = if off > 0.0 {
            format!("{:.1}x", on / off)
        } else {
            "n/a (off: none within the window)".into()
        };
        println!("    {clients:>4} clients: {speedup}");
    }
    println!();
}

pub(crate) async fn commit_count(http: &reqwest::Client, base: &str, graph: &str) -> usize {
    let body: Value = http
        .get(format!("{base}/graphs/{graph}/commits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["commits"].as_array().map(Vec::len).unwrap_or(0)
}

/// `clients` loops of single inserts; only answers that arrive within `window` count. The
/// loops are abandoned at the end of the window.
pub(crate) async fn insert_window(
    http: &reqwest::Client,
    base: &str,
    graph: &str,
    clients: usize,
    window: Duration,
) -> (usize, usize, Vec<Duration>) {
    let deadline = Instant::now() + window;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let http = http.clone();
            let sender = sender.clone();
            let url = format!("{base}/graphs/{graph}/mutate");
            tokio::spawn(async move {
                for i in 0.. {
                    let started = Instant::now();
                    let body = json!({"query": INSERT, "params": {"name": format!("c{client}-{i}"), "age": 1}});
                    let ok = matches!(http.post(&url).json(&body).send().await, Ok(r) if r.status() == 200);
                    if sender.send((ok, started.elapsed(), Instant::now())).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(sender);
    let (mut done, mut errors, mut samples) = (0, 0, Vec::new());
    while let Ok(Some((ok, latency, at))) = tokio::time::timeout_at(deadline, receiver.recv()).await
    {
        if at > deadline {
            break;
        }
        if ok {
            done += 1;
            samples.push(latency);
        } else {
            errors += 1;
        }
    }
    for task in tasks {
        task.abort();
    }
    (done, errors, samples)
}
