//! A deterministic simulation of our own write path: the coalescer, the lease protocol and
//! its fences, placement and hand-over, run against a model engine (a `__manifest` advanced
//! by compare-and-swap) and a simulated object store, on tokio's paused clock on one thread.
//! Lance never runs in it, so one seed (20 simulated seconds of several nodes and clients
//! under faults) takes milliseconds, and the same seed replays exactly the same run.
//!
//! What is simulated ([`world`]): the store's latency, refused requests, answers lost after
//! the request landed, stragglers; nodes crashing (kill -9, restarted later), pausing
//! (SIGSTOP: nothing of the node runs, timers included), cut off from the store, or isolated
//! from the other nodes (their failure detector drops it after a delay, and it them); clocks
//! skewed within the lease's safety margin. What is real: `Coalescer`, `coalescer::execute`
//! (batches, splits, retries of lost races, outcome-unknown answers), `LeaseHolder` with its
//! renewal task and `Fence`, `LeaseStore`'s protocol, `placement::owner`.
//!
//! Each run returns its history (every client request with its answer) and the model's
//! commits; `omnigraph-cloud-chaos` checks them with the same checker as the real cluster's
//! runs (docs/chaos.md).

mod faults;
mod link;
mod model;
mod node;
mod world;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigraph_cloud_cluster::lease::LeaseTiming;
use omnigraph_cloud_cluster::placement;
use omnigraph_compiler::query::ast::Literal;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub use faults::{Fault, Scheduled};
pub use world::Commit;

use crate::ErrorKind;
use crate::repo::WriteOp;
use faults::Cluster;
use node::Request;
use world::World;

/// The shape of a simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    pub clients: usize,
    /// How long clients write and faults strike; then everything heals.
    pub duration: Duration,
    pub faults: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            nodes: 3,
            clients: 4,
            duration: Duration::from_secs(20),
            faults: true,
        }
    }
}

/// One client request and its answer, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOp {
    pub client: u32,
    /// The id the insert writes (unique in the run).
    pub id: String,
    pub node: usize,
    pub invoke_ms: u64,
    pub return_ms: u64,
    /// The HTTP status the node's API would answer; 0 when no answer came.
    pub status: u16,
    pub version: Option<u64>,
    pub epoch: Option<u64>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRun {
    pub seed: u64,
    pub faults: Vec<Scheduled>,
    pub history: Vec<SimOp>,
    /// The model `__manifest` after healing.
    pub commits: Vec<Commit>,
}

impl SimRun {
    /// Every id in the graph after healing.
    pub fn present(&self) -> BTreeSet<String> {
        self.commits
            .iter()
            .flat_map(|commit| commit.ids.iter().cloned())
            .collect()
    }
}

/// Lease timing of the simulated nodes: a 3 s lease, renewed every 0.8 s, given up 0.6 s
/// before it expires.
const TIMING: LeaseTiming = LeaseTiming {
    ttl: Duration::from_secs(3),
    safety_margin: Duration::from_millis(600),
};

/// How long a client waits for an answer before it counts the request as unanswered.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs seed `seed` to its end.
pub fn run(seed: u64, config: &SimConfig) -> SimRun {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(simulate(seed, config))
}

async fn simulate(seed: u64, config: &SimConfig) -> SimRun {
    let world = Arc::new(World::new(seed, config.nodes));
    let cluster = Arc::new(Cluster::start(Arc::clone(&world), config.nodes, TIMING));
    let faults = if config.faults {
        faults::schedule(&world, config.nodes, config.duration)
    } else {
        Vec::new()
    };
    let history = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + config.duration;
    let clients: Vec<_> = (0..config.clients as u32)
        .map(|client| {
            tokio::spawn(write_until(
                Arc::clone(&cluster),
                client,
                until,
                Arc::clone(&history),
            ))
        })
        .collect();
    let start = world.started;
    for scheduled in &faults {
        tokio::time::sleep_until(start + scheduled.at).await;
        cluster.apply(scheduled.fault, true, scheduled.lasts);
        let (cluster, scheduled) = (Arc::clone(&cluster), *scheduled);
        tokio::spawn(async move {
            tokio::time::sleep(scheduled.lasts).await;
            if Instant::now() < until {
                cluster.apply(scheduled.fault, false, scheduled.lasts);
            }
        });
    }
    tokio::time::sleep_until(until).await;
    cluster.heal();
    for client in clients {
        client.await.expect("a client task");
    }
    let mut history = std::mem::take(&mut *history.lock().expect("history"));
    history.sort_by_key(|op: &SimOp| (op.invoke_ms, op.client));
    // Requests in flight land within a store timeout plus a straggler; then the store is read.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let commits = world.manifest.lock().expect("manifest").clone();
    SimRun {
        seed,
        faults,
        history,
        commits,
    }
}

/// One client: inserts of fresh ids, each sent to the node it believes owns the graph (or,
/// one time in five, to any node), until `until`.
async fn write_until(
    cluster: Arc<Cluster>,
    client: u32,
    until: Instant,
    history: Arc<Mutex<Vec<SimOp>>>,
) {
    let world = Arc::clone(&cluster.world);
    let mut sent = 0;
    loop {
        let think = Duration::from_millis(world.rng(|rng| rng.u64(20..250)));
        tokio::time::sleep(think).await;
        if Instant::now() >= until {
            return;
        }
        sent += 1;
        let id = format!("c{client}-{sent}");
        let view = world.client_view();
        let node = match placement::owner(&view, &node::key()) {
            Some(owner) if !world.chance(0.2) => owner[1..].parse().expect("a node name"),
            _ => world.rng(|rng| rng.usize(0..world.nodes.len())),
        };
        let invoke_ms = world.elapsed_ms();
        let (status, version, epoch) = send(&cluster, node, &id).await;
        history.lock().expect("history").push(SimOp {
            client,
            id,
            node,
            invoke_ms,
            return_ms: world.elapsed_ms(),
            status,
            version,
            epoch,
        });
    }
}

async fn send(cluster: &Cluster, node: usize, id: &str) -> (u16, Option<u64>, Option<u64>) {
    let inbox = cluster.nodes.lock().expect("nodes")[node]
        .as_ref()
        .map(|booted| booted.inbox.clone());
    let Some(inbox) = inbox else {
        return (0, None, None); // connection refused
    };
    let op = WriteOp::Mutate {
        branch: "main".into(),
        source: model::INSERT.into(),
        name: "ins".into(),
        params: [("id".to_string(), Literal::String(id.to_string()))]
            .into_iter()
            .collect(),
        actor: None,
    };
    let (reply, answer) = oneshot::channel();
    if inbox.send(Request { op, reply }).is_err() {
        return (0, None, None);
    }
    match tokio::time::timeout(CLIENT_TIMEOUT, answer).await {
        Ok(Ok(Ok(written))) => (
            200,
            written.stamp.manifest_version,
            written.stamp.lease_epoch,
        ),
        Ok(Ok(Err(err))) => (status_of(err.kind()), None, None),
        Ok(Err(_)) | Err(_) => (0, None, None), // the node died, or no answer in time
    }
}

/// The status the HTTP API answers for an error of `kind` (`http::error`, which a test holds
/// to this table).
pub fn status_of(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::Invalid => 400,
        ErrorKind::Forbidden => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::NotWriter => 421,
        ErrorKind::Overloaded => 429,
        ErrorKind::Internal => 500,
        ErrorKind::Unavailable | ErrorKind::OutcomeUnknown => 503,
        ErrorKind::DeadlineExceeded => 504,
    }
}
