//! Section 2: the first request to a graph after a node restart against the request right
//! after it, once cold (the disk tier kept, no pre-warm) and once pre-warmed (the node's
//! recorded warm set opened at start).

use super::*;

/// The node id whose warm set is recorded, and restored by the pre-warmed restart.
pub(crate) const WARM_SET_ID: &str = "bench-a";

/// Creates the cold graphs on `node`, then restarts it twice (see the module); returns the
/// last node.
pub(crate) async fn cold_first_requests<F, Fut>(
    settings: &Settings,
    http: &reqwest::Client,
    node: Node,
    start_node: F,
) -> Node
where
    F: Fn(Option<&'static str>) -> Fut,
    Fut: std::future::Future<Output = Node>,
{
    let base = format!("http://{}", node.local_addr());
    let graphs: Vec<String> = (0..settings.cold_graphs)
        .map(|i| format!("cold{i}"))
        .collect();
    for graph in &graphs {
        create_graph(http, &base, graph).await;
        load_people(http, &base, graph, 50).await;
    }
    // The loads above activated the graphs; restart the node (as another node id, which has
    // no warm set recorded) so that every graph is cold.
    node.shutdown().await.unwrap();
    let node = start_node(None).await;
    let (cold, warm) = first_and_next(http, &node, &graphs, ["p1", "p2"]).await;
    println!(
        "first request to a cold graph (activation) vs the next one, {} graphs",
        graphs.len()
    );
    print_pair(
        ("cold (opens the graph)", cold),
        ("warm", warm),
        "cold / warm",
    );

    // Once more as the first node, whose warm set was recorded: it opens the graphs at start.
    node.shutdown().await.unwrap();
    let started = Instant::now();
    let node = start_node(Some(WARM_SET_ID)).await;
    while !node.registry().warm_set_restored() && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restored = started.elapsed();
    let (first, next) = first_and_next(http, &node, &graphs, ["p3", "p4"]).await;
    println!(
        "after a restart with pre-warm (warm set restored in {}): first request vs the next one",
        ms(restored)
    );
    print_pair(
        ("first (pre-warmed)", first),
        ("next", next),
        "first / next",
    );
    println!();
    node
}

/// Two queries on each graph, for two different people: the latencies of the firsts and of
/// the seconds.
async fn first_and_next(
    http: &reqwest::Client,
    node: &Node,
    graphs: &[String],
    people: [&str; 2],
) -> (Vec<Duration>, Vec<Duration>) {
    let base = format!("http://{}", node.local_addr());
    let (mut first, mut next) = (Vec::new(), Vec::new());
    for graph in graphs {
        for (person, samples) in people.iter().zip([&mut first, &mut next]) {
            let started = Instant::now();
            query_http(http, &base, graph, person).await;
            samples.push(started.elapsed());
        }
    }
    (first, next)
}

/// p50 and max of two sets of latencies, and the ratio of their p50s.
fn print_pair(
    (first_label, mut first): (&str, Vec<Duration>),
    (next_label, mut next): (&str, Vec<Duration>),
    ratio_label: &str,
) {
    let (first_p50, first_max) = percentiles(&mut first);
    let (next_p50, next_max) = percentiles(&mut next);
    println!("  {:<28} {:>10} {:>10}", "", "p50", "max");
    println!(
        "  {:<28} {:>10} {:>10}",
        first_label,
        ms(first_p50),
        ms(first_max)
    );
    println!(
        "  {:<28} {:>10} {:>10}",
        next_label,
        ms(next_p50),
        ms(next_max)
    );
    println!(
        "  {:<28} {:>10}",
        format!("ratio {ratio_label}"),
        ratio(first_p50, next_p50)
    );
}
