//! A chaos run: a cluster of real node processes on one root (moto, behind a fault proxy per
//! node), concurrent clients inserting, loading, branching, merging, reading and exporting
//! ([`crate::workload`]), and a seeded schedule of faults; then every node healed, each branch
//! read in full, and the history checked ([`crate::history`]).
//!
//! Everything random comes from the seed: which faults, when, on which node, which client
//! writes or reads where. Replaying a seed replays the schedule (the machine's timing still
//! varies, so a replay reproduces the faults, not every interleaving).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::history::{Verdict, check_and_cross_check};
use crate::nodes::{Layout, Node};
use crate::workload::{GRAPH, TOKEN, Workload, final_state};

/// Each node's cache disk, when the run can mount one: smaller than the disk tier, so that
/// filling it leaves foyer's sparse files no room.
const CACHE_DISK_BYTES: u64 = 16 * 1024 * 1024;
use crate::{ErrorRule, FaultProxy, Faults, Latency, Net, Op, S3Server, Tmpfs, aws_env_for};

const SECRET: &str = "chaos-cluster-secret-0123456789abcdef";
const SCHEMA: &str = include_str!("../../examples/team.pg");

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub duration: Duration,
    pub nodes: usize,
    pub clients: u32,
    /// The `omnigraph-cloud` binary.
    pub binary: PathBuf,
    /// Where the history goes (JSON lines); none if unset.
    pub history: Option<PathBuf>,
}

/// What a run did and found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub seed: u64,
    /// `namespaces` (each node in its own, so that nodes can be cut apart) or `loopback`.
    pub network: &'static str,
    /// Whether each node had a cache disk of its own to fill.
    pub cache_disks: bool,
    pub faults: Vec<String>,
    pub verdict: Verdict,
    pub present: usize,
}

/// The faults a schedule draws from.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
    Pause,
    SlowStore,
    StoreErrors,
    /// One node cannot reach the store: its proxy drops every connection.
    StorePartition,
    /// One node's cache disk (a tmpfs of its own) is filled to the last byte, and the node
    /// restarted meanwhile: the flush of its memory tier at shutdown finds no space.
    CacheDiskFull,
    /// One node cut off from the others (its link to their bridge down), not from the store
    /// nor the clients.
    NodePartition,
}

/// Runs `scenario` and checks its history.
pub async fn run(scenario: &Scenario) -> Outcome {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    std::fs::write(root.join("secret"), SECRET).unwrap();
    std::fs::create_dir(root.join("policies")).unwrap();
    std::fs::write(
        root.join("policies/_default.cedar"),
        "permit (principal, action, resource);",
    )
    .unwrap();
    let s3 = S3Server::start()
        .await
        .expect("moto (scripts/test.sh installs it)");
    s3.create_bucket("chaos").await.unwrap();
    // Each node in a network namespace of its own, and its cache disk on a tmpfs of its own,
    // when the run can make them (as root); otherwise loopback ports, no disk tier, and
    // neither a partition between nodes nor a full cache disk among the faults.
    let net = Net::build(scenario.nodes);
    let disks: Vec<Tmpfs> = (0..scenario.nodes)
        .map_while(|_| Tmpfs::mount(CACHE_DISK_BYTES))
        .collect();
    let disks = if disks.len() == scenario.nodes {
        disks
    } else {
        Vec::new()
    };
    // Each node reaches the store through a proxy of its own, so that one node can be cut
    // off from it while the others are not.
    let mut proxies = Vec::new();
    for i in 0..scenario.nodes {
        let listen = match &net {
            Some(net) => format!("{}:0", net.host_ip(i)),
            None => "127.0.0.1:0".into(),
        };
        let proxy = FaultProxy::start(listen.parse().unwrap(), s3.endpoint())
            .await
            .unwrap();
        proxies.push(proxy);
    }
    let set_faults = |faults: Faults| {
        for proxy in &proxies {
            proxy.set_faults(faults.clone());
        }
    };
    let layout = Layout {
        dir: root,
        net: net.as_ref(),
        disks: &disks,
        seed_port: free_udp_port(),
    };
    let mut nodes: Vec<Node> = (0..scenario.nodes)
        .map(|i| Node::configure(i, &layout, aws_env_for(&proxies[i].endpoint())))
        .collect();
    for node in &mut nodes {
        node.start(&scenario.binary);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    let bases: Vec<String> = nodes.iter().map(|node| node.base.clone()).collect();
    for base in &bases {
        wait_ready(&http, base).await;
    }
    create_graph(&http, &bases[0]).await;

    let started = Instant::now();
    let deadline = started + scenario.duration;
    let workload = Workload {
        http: http.clone(),
        bases: bases.clone(),
        started,
        history: Arc::default(),
    };
    let clients = workload.spawn(scenario.seed, scenario.clients, deadline);

    // The schedule: a fault every 2 to 5 s, each lasting 1 to 4 s.
    let mut kinds = vec![
        Fault::Kill,
        Fault::Pause,
        Fault::SlowStore,
        Fault::StoreErrors,
        Fault::StorePartition,
    ];
    if !disks.is_empty() {
        kinds.push(Fault::CacheDiskFull);
    }
    if net.is_some() {
        kinds.push(Fault::NodePartition);
    }
    let mut rng = fastrand::Rng::with_seed(scenario.seed);
    let mut faults = Vec::new();
    while Instant::now() + Duration::from_secs(6) < deadline {
        tokio::time::sleep(Duration::from_millis(rng.u64(2000..5000))).await;
        let fault = kinds[rng.usize(..kinds.len())];
        let node = rng.usize(..nodes.len());
        let lasting = Duration::from_millis(rng.u64(1000..4000));
        faults.push(format!(
            "{:.1}s {fault:?} n{node} for {:.1}s",
            started.elapsed().as_secs_f64(),
            lasting.as_secs_f64()
        ));
        match fault {
            Fault::Kill => {
                nodes[node].kill();
                tokio::time::sleep(lasting).await;
                nodes[node].start(&scenario.binary);
            }
            Fault::Pause => {
                nodes[node].signal("-STOP");
                tokio::time::sleep(lasting).await;
                nodes[node].signal("-CONT");
            }
            Fault::SlowStore => {
                let slow = Latency {
                    p50_ms: 400,
                    jitter_ms: 200,
                };
                set_faults(Faults {
                    latency: [(Op::Put, slow), (Op::Get, slow)].into(),
                    ..Faults::default()
                });
                tokio::time::sleep(lasting).await;
                set_faults(Faults::default());
            }
            Fault::StoreErrors => {
                set_faults(Faults {
                    errors: vec![ErrorRule {
                        ops: vec![Op::Put],
                        key_contains: None,
                        rate: 0.2,
                        status: 503,
                        code: None,
                    }],
                    ..Faults::default()
                });
                tokio::time::sleep(lasting).await;
                set_faults(Faults::default());
            }
            Fault::StorePartition => {
                proxies[node].set_faults(Faults {
                    partition: true,
                    ..Faults::default()
                });
                tokio::time::sleep(lasting).await;
                proxies[node].set_faults(Faults::default());
            }
            Fault::CacheDiskFull => {
                let filler = disks[node].fill();
                nodes[node].stop().await;
                nodes[node].start(&scenario.binary);
                tokio::time::sleep(lasting).await;
                let _ = std::fs::remove_file(filler);
            }
            Fault::NodePartition => {
                let net = net.as_ref().expect("partitions only with namespaces");
                net.cut(node, true);
                tokio::time::sleep(lasting).await;
                net.cut(node, false);
            }
        }
    }
    for client in clients {
        let _ = client.await;
    }

    // Heal: every node up, the store clean; then read everything.
    set_faults(Faults::default());
    for node in &mut nodes {
        if node.child.is_none() {
            node.start(&scenario.binary);
        }
    }
    for base in &bases {
        wait_ready(&http, base).await;
    }
    let history = std::mem::take(&mut *workload.history.lock().unwrap());
    let present = final_state(&http, &bases[0], &history).await;
    for node in &mut nodes {
        node.signal("-TERM");
    }
    for node in &mut nodes {
        if let Some(mut child) = node.child.take() {
            let _ = child.wait();
        }
    }
    if let Some(path) = &scenario.history {
        let lines: Vec<String> = history
            .iter()
            .map(|op| serde_json::to_string(op).unwrap())
            .collect();
        std::fs::write(path, lines.join("\n") + "\n").expect("history written");
        let present = serde_json::to_vec_pretty(&present).expect("final state serializes");
        std::fs::write(final_state_path(path), present).expect("final state written");
    }
    let verdict = check_and_cross_check(&history, &present);
    Outcome {
        seed: scenario.seed,
        network: if net.is_some() {
            "namespaces"
        } else {
            "loopback"
        },
        cache_disks: !disks.is_empty(),
        faults,
        verdict,
        present: present.get("main").map_or(0, |ids| ids.len()),
    }
}

/// Where the healed graph's ids are kept beside a history: `{history}.final.json`.
pub fn final_state_path(history: &std::path::Path) -> PathBuf {
    let mut name = history.as_os_str().to_owned();
    name.push(".final.json");
    PathBuf::from(name)
}

/// Creates the run's graph.
async fn create_graph(http: &reqwest::Client, base: &str) {
    let response = http
        .post(format!("{base}/graphs"))
        .bearer_auth(TOKEN)
        .json(&json!({"graph_id": GRAPH, "schema_source": SCHEMA}))
        .send()
        .await
        .expect("graph created");
    assert_eq!(response.status().as_u16(), 201, "graph created");
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..240 {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("node at {base} never became ready");
}

/// A TCP port on loopback that nothing listens on now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port on loopback that nothing is bound to now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
