//! What a stale-ok read saves: a warm point query on a node that reads a graph another node
//! writes (so it is not the graph's cache authority), strong against
//! `x-omnigraph-consistency: stale-ok`, interleaved, with the store requests of each.

use std::collections::BTreeMap;

use super::*;

pub(crate) async fn stale_reads(backend: &Backend, proxy: &FaultProxy, quick: bool) {
    let iterations = if quick { 20 } else { 60 };
    println!(
        "=== stale-ok reads: {}, a reader that is not the graph's authority, {iterations} \
         queries each ===",
        backend.name()
    );
    let writer = start(backend, "[node]\nroles = [\"serve\", \"worker\"]\n").await;
    let reader = start(backend, "[node]\nroles = [\"serve\"]\n").await;
    let http = reqwest::Client::new();
    let (writer_base, reader_base) = (
        format!("http://{}", writer.local_addr()),
        format!("http://{}", reader.local_addr()),
    );
    create_graph(&http, &writer_base, "stale").await;
    load_people(&http, &writer_base, "stale", 2000).await;
    query_http(&http, &reader_base, "stale", "p1").await;

    let mut took: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut requests: [BTreeMap<Op, u64>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for i in 0..iterations {
        for (kind, stale) in [false, true].into_iter().enumerate() {
            proxy.reset_stats();
            let mut request = http
                .post(format!("{reader_base}/graphs/stale/query"))
                .json(&json!({"query": QUERIES, "name": "get_person",
                               "params": {"name": format!("p{}", (i * 37) % 2000)}}));
            if stale {
                request = request
                    .header("x-omnigraph-consistency", "stale-ok")
                    .header("x-omnigraph-max-staleness-ms", "60000");
            }
            let started = Instant::now();
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let _ = response.bytes().await.unwrap();
            took[kind].push(started.elapsed());
            for (op, count) in proxy.stats().by_op {
                *requests[kind].entry(op).or_default() += count;
            }
        }
    }
    println!(
        "  {:<12} {:>10} {:>10}   store requests per query",
        "", "p50", "p99"
    );
    for (kind, label) in ["strong", "stale-ok"].into_iter().enumerate() {
        let (p50, p99) = percentiles(&mut took[kind]);
        let per_query: Vec<String> = requests[kind]
            .iter()
            .map(|(op, count)| format!("{op:?} {:.1}", *count as f64 / iterations as f64))
            .collect();
        println!(
            "  {:<12} {:>10} {:>10}   {}",
            label,
            ms(p50),
            ms(p99),
            per_query.join(", ")
        );
    }
    let (strong, stale) = (percentiles(&mut took[0]).0, percentiles(&mut took[1]).0);
    println!("  {:<12} {:>10}", "stale / strong", ratio(stale, strong));
    println!();
    reader.shutdown().await.unwrap();
    writer.shutdown().await.unwrap();
}

async fn start(backend: &Backend, toml: &str) -> Node {
    let toml = format!("{QUIET_NODE}{toml}");
    let mut config = NodeConfig::load(Some(&toml), std::iter::empty()).unwrap();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_bind = None;
    config.storage.root = backend.root();
    Node::start(config).await.unwrap()
}
