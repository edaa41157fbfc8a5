//! What a cache miss costs: the first request to a graph on a fresh serve-only node (no
//! authority, so listings and text files go to the store either way, and the memory tier is
//! empty, so every block read is a miss) with the cache tier on and off, interleaved.

use super::*;

const ROUNDS: usize = 6;

pub(crate) async fn miss_cost(backend: &Backend) {
    println!(
        "=== cache miss cost: {}, first request on a fresh serve-only node, {ROUNDS} rounds ===",
        backend.name()
    );
    // The graph, made by a node of its own that then stops (its leases released).
    let writer = start(backend, "[node]\nroles = [\"serve\", \"worker\"]\n", true).await;
    let base = format!("http://{}", writer.local_addr());
    let http = reqwest::Client::new();
    create_graph(&http, &base, "miss").await;
    load_people(&http, &base, "miss", 2000).await;
    writer.shutdown().await.unwrap();

    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for cache in [true, false] {
            let node = start(backend, "[node]\nroles = [\"serve\"]\n", cache).await;
            let base = format!("http://{}", node.local_addr());
            let started = Instant::now();
            query_http(&http, &base, "miss", &format!("p{}", round * 17)).await;
            let took = started.elapsed();
            if cache { &mut on } else { &mut off }.push(took);
            node.shutdown().await.unwrap();
        }
    }
    let (on_p50, on_max) = percentiles(&mut on);
    let (off_p50, off_max) = percentiles(&mut off);
    println!("  {:<28} {:>10} {:>10}", "", "p50", "max");
    println!(
        "  {:<28} {:>10} {:>10}",
        "cache on (every block a miss)",
        ms(on_p50),
        ms(on_max)
    );
    println!(
        "  {:<28} {:>10} {:>10}",
        "cache off",
        ms(off_p50),
        ms(off_max)
    );
    println!("  {:<28} {:>10}", "ratio on / off", ratio(on_p50, off_p50));
    println!();
}

async fn start(backend: &Backend, toml: &str, cache: bool) -> Node {
    let toml = format!("[log]\nfilter = \"error\"\n{toml}");
    let mut config = NodeConfig::load(Some(&toml), std::iter::empty()).unwrap();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_bind = None;
    config.storage.root = backend.root();
    config.cache.enabled = cache;
    Node::start(config).await.unwrap()
}
