//! Noisy neighbours: a quiet tenant's warm query latency alone, and beside a noisy tenant
//! that sends 50 times its rate limit to the same node, interleaved round by round.
//!
//! Both tenants get `limits.requests_per_second = RATE` (burst twice that). The quiet tenant
//! sends `QUIET_RATE` point queries a second, well within its limit; the noisy one sends
//! `50 * RATE` a second from many clients, and the node admits about `RATE` of them and
//! answers the rest 429. The node runs on the benchmark's runtime; each tenant's clients run
//! on a thread of their own (a current-thread runtime), as they would on other machines, but
//! all share the machine's cores.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// Each tenant's rate limit, requests per second.
const RATE: u64 = 50;
/// How much faster than its limit the noisy tenant sends.
const NOISE: u64 = 50;
const QUIET_RATE: u64 = 20;
/// Clients the noisy tenant sends from, each at `RATE * NOISE / NOISY_CLIENTS` a second.
const NOISY_CLIENTS: u64 = 25;

pub(crate) async fn noisy_neighbours(quick: bool) {
    let (rounds, seconds) = if quick { (2, 3) } else { (4, 8) };
    println!(
        "=== noisy neighbours: local disk, limit {RATE} req/s per tenant, quiet tenant at \
         {QUIET_RATE} req/s, noisy tenant at {}x its limit, {rounds} rounds of {seconds} s each ===",
        NOISE
    );
    let dir = tempfile::tempdir().unwrap();
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("_default.cedar"),
        "permit (principal, action, resource);",
    )
    .unwrap();
    let toml = format!(
        "[log]\nfilter = \"error\"\n[auth]\npolicy_dir = {:?}\n\
         [[auth.tokens]]\ntoken = \"quiet-token\"\nactor = \"q\"\ntenant = \"quiet\"\n\
         [[auth.tokens]]\ntoken = \"noisy-token\"\nactor = \"n\"\ntenant = \"noisy\"\n\
         [limits]\nrequests_per_second = {RATE}\n",
        policies.path().display().to_string()
    );
    let mut config = NodeConfig::load(Some(&toml), std::iter::empty()).unwrap();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_bind = None;
    config.storage.root = StorageRoot::File(dir.path().to_path_buf());
    let node = Node::start(config).await.unwrap();
    let base = format!("http://{}", node.local_addr());
    let quiet = client_for("quiet-token");
    let noisy = client_for("noisy-token");
    for http in [&quiet, &noisy] {
        create_graph(http, &base, "g").await;
        load_people(http, &base, "g", 2000).await;
    }
    // Warm both graphs, and let the buckets refill after the loads.
    query_http(&quiet, &base, "g", "p1").await;
    query_http(&noisy, &base, "g", "p1").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let window = Duration::from_secs(seconds);
    let (mut alone, mut at_limit, mut beside) = (Vec::new(), Vec::new(), Vec::new());
    let mut noisy_sent = Counts::default();
    for _ in 0..rounds {
        alone.extend(on_own_thread(quiet_window(quiet.clone(), base.clone(), window)).await);
        // A neighbour at its limit: all of its queries admitted.
        at_limit.extend(beside_neighbour(&quiet, &noisy, &base, window, 1).await.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (took, counts) = beside_neighbour(&quiet, &noisy, &base, window, NOISE).await;
        beside.extend(took);
        noisy_sent.sent += counts.sent;
        noisy_sent.refused += counts.refused;
        // Let the noisy tenant's bucket refill before the next round.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let alone = percentiles(&mut alone);
    println!(
        "  {:<40} {:>10} {:>10} {:>8}",
        "quiet tenant", "p50", "p99", "p99 ratio"
    );
    let row = |label: &str, (p50, p99): (Duration, Duration)| {
        println!(
            "  {:<40} {:>10} {:>10} {:>8}",
            label,
            ms(p50),
            ms(p99),
            ratio(p99, alone.1)
        );
    };
    row("alone", alone);
    row(
        "beside a tenant at its limit (1x)",
        percentiles(&mut at_limit),
    );
    row(
        &format!("beside a tenant at {NOISE}x its limit"),
        percentiles(&mut beside),
    );
    let noisy_seconds = (rounds * seconds) as f64;
    println!(
        "  noisy tenant at {NOISE}x: sent {:.0} req/s, admitted {:.0} req/s, refused {} of {} \
         with 429",
        noisy_sent.sent as f64 / noisy_seconds,
        (noisy_sent.sent - noisy_sent.refused) as f64 / noisy_seconds,
        noisy_sent.refused,
        noisy_sent.sent
    );
    println!();
    node.shutdown().await.unwrap();
}

/// Starts `work` on a thread of its own, with a current-thread runtime, at once; the future
/// returned waits for its output.
fn on_own_thread<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> impl std::future::Future<Output = T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = done.send(runtime.block_on(work));
    });
    async move { result.await.expect("the client thread panicked") }
}

#[derive(Default)]
struct Counts {
    sent: u64,
    refused: u64,
}

/// The quiet tenant's window beside the noisy one sending `noise` times its limit: the quiet
/// latencies and the noisy counts.
async fn beside_neighbour(
    quiet: &reqwest::Client,
    noisy: &reqwest::Client,
    base: &str,
    window: Duration,
    noise: u64,
) -> (Vec<Duration>, Counts) {
    let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Instant::now() + window;
    let clients = (0..NOISY_CLIENTS).map(|client| {
        let (http, base) = (noisy.clone(), base.to_string());
        let (sent, refused) = (Arc::clone(&sent), Arc::clone(&refused));
        noise_client(http, base, client, RATE * noise, stop, sent, refused)
    });
    let noise = on_own_thread(futures::future::join_all(clients));
    let took = on_own_thread(quiet_window(quiet.clone(), base.to_string(), window)).await;
    noise.await;
    let counts = Counts {
        sent: sent.load(Ordering::SeqCst),
        refused: refused.load(Ordering::SeqCst),
    };
    (took, counts)
}

fn client_for(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {token}").parse().unwrap();
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The quiet tenant's point queries at `QUIET_RATE` a second for `window`; their latencies.
async fn quiet_window(http: reqwest::Client, base: String, window: Duration) -> Vec<Duration> {
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / QUIET_RATE));
    let stop = Instant::now() + window;
    let mut took = Vec::new();
    let mut i = 0;
    while Instant::now() < stop {
        ticks.tick().await;
        let started = Instant::now();
        query_http(&http, &base, "g", &format!("p{}", (i * 37) % 2000)).await;
        took.push(started.elapsed());
        i += 1;
    }
    took
}

/// One of the noisy tenant's clients: point queries at its share of `rate` a second until
/// `stop`, counting what was sent and what was refused.
async fn noise_client(
    http: reqwest::Client,
    base: String,
    client: u64,
    rate: u64,
    stop: Instant,
    sent: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) {
    let per_second = rate as f64 / NOISY_CLIENTS as f64;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i = client;
    while Instant::now() < stop {
        ticks.tick().await;
        let response = http
            .post(format!("{base}/graphs/g/query"))
            .json(&json!({"query": QUERIES, "name": "get_person",
                           "params": {"name": format!("p{}", (i * 13) % 2000)}}))
            .send()
            .await
            .unwrap();
        sent.fetch_add(1, Ordering::Relaxed);
        match response.status().as_u16() {
            200 => {}
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                refused.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("noisy tenant got {other}"),
        }
        let _ = response.bytes().await;
        i += NOISY_CLIENTS;
    }
}
