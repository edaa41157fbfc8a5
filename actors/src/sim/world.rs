//! The simulated world every node shares: the object store (lease objects and a model
//! `__manifest`), the faults in force, the seeded random source, and what each node can see
//! of the others. Only the simulation's own tasks touch it, on one thread, on tokio's paused
//! clock, so a seed replays exactly.

use std::sync::Mutex;
use std::time::Duration;

use omnigraph_cloud_cluster::lease::MemoryBackend;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long after a node stops answering (crashed, paused, cut off) the others stop counting
/// it as a member, and how long after it comes back they count it again: the gossip failure
/// detector's delay.
pub(super) const DETECT: Duration = Duration::from_secs(2);

/// How long a request to a store the node cannot reach waits before it fails.
pub(super) const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// One commit of the model `__manifest`: what it added and who published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The version this commit made.
    pub version: u64,
    /// The write ids it holds.
    pub ids: Vec<String>,
    /// The node (index) and lease epoch it was published under.
    pub node: usize,
    pub epoch: u64,
    /// When the writer stamped it, on its own clock (microseconds since the Unix epoch).
    pub created_us: i64,
    /// When it landed, in simulated milliseconds since the start.
    pub landed_ms: u64,
}

/// Store-wide fault rates in force now (error and slow bursts raise them).
#[derive(Debug, Clone, Copy)]
pub(super) struct StoreFaults {
    /// Requests refused before they reach the store.
    pub errors: f64,
    /// Requests that land but whose answer is lost.
    pub lost_answers: f64,
    /// Requests that take seconds instead of milliseconds.
    pub stragglers: f64,
}

impl StoreFaults {
    pub(super) const CALM: StoreFaults = StoreFaults {
        errors: 0.0,
        lost_answers: 0.0,
        stragglers: 0.0,
    };
}

/// What one node is suffering now.
#[derive(Debug, Default)]
pub(super) struct NodeState {
    /// Crashed (its tasks are gone) until restarted.
    pub down: bool,
    /// Cut off from the store.
    pub cut_from_store: bool,
    /// Cut off from the other nodes (and they from it).
    pub isolated: bool,
    /// Since when its reachability last changed, for the failure detector's delay.
    pub changed: Option<Instant>,
    /// What the others saw before that change.
    pub seen_before: bool,
}

/// How one request to the store will go, drawn when it is sent.
#[derive(Debug, Clone)]
pub(super) struct RequestPlan {
    pub to_store: Duration,
    pub back: Duration,
    /// Refused before landing, with this message.
    pub refused: Option<&'static str>,
    /// Landed, but the answer is lost with this message.
    pub lost: Option<&'static str>,
}

/// Messages of store failures, as the object-store client words them: the first two are
/// classed "unavailable", the third "internal" (`crate::classify`).
const UNAVAILABLE: &str =
    "Generic S3 error: Error after 3 retries, max_retries: 3, source: 503 Service Unavailable";
const CONNECTION_CLOSED: &str = "error sending request: connection closed before message completed";
const TRUNCATED: &str = "Generic S3 error: unexpected end of body while reading the response";
pub(super) const TIMED_OUT: &str = "Generic S3 error: operation timed out";

pub(super) struct World {
    pub leases: MemoryBackend,
    pub manifest: Mutex<Vec<Commit>>,
    rng: Mutex<fastrand::Rng>,
    pub store: Mutex<StoreFaults>,
    pub nodes: Vec<Mutex<NodeState>>,
    /// Per node: whether it is paused (its tasks make no progress, like SIGSTOP).
    pub paused: Vec<watch::Sender<bool>>,
    /// Per node: a pause that strikes when the node next sends a request, for this long: a
    /// process stopped between two steps of its work rather than while it waits.
    pub pause_at_next_send: Vec<Mutex<Option<Duration>>>,
    pub started: Instant,
}

impl World {
    pub(super) fn new(seed: u64, nodes: usize) -> World {
        World {
            leases: MemoryBackend::new(),
            manifest: Mutex::new(Vec::new()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            store: Mutex::new(StoreFaults::CALM),
            nodes: (0..nodes).map(|_| Mutex::default()).collect(),
            paused: (0..nodes).map(|_| watch::Sender::new(false)).collect(),
            pause_at_next_send: (0..nodes).map(|_| Mutex::new(None)).collect(),
            started: Instant::now(),
        }
    }

    /// Draws from the seeded random source.
    pub(super) fn rng<T>(&self, draw: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
        draw(&mut self.rng.lock().expect("rng"))
    }

    pub(super) fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng(|rng| rng.f64()) < p
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The manifest's latest version (1: the empty graph).
    pub(super) fn head(&self) -> u64 {
        self.manifest.lock().expect("manifest").len() as u64 + 1
    }

    /// Draws how the next request of a node to the store goes.
    pub(super) fn plan_request(&self) -> RequestPlan {
        let faults = *self.store.lock().expect("store faults");
        let latency = || {
            if self.chance(faults.stragglers) {
                Duration::from_millis(self.rng(|rng| rng.u64(500..6_000)))
            } else {
                Duration::from_millis(self.rng(|rng| rng.u64(1..25)))
            }
        };
        let (to_store, back) = (latency(), latency());
        let refused = self
            .chance(faults.errors)
            .then(|| *self.rng(|rng| rng.choice(&[UNAVAILABLE, TRUNCATED]).expect("messages")));
        let lost = self.chance(faults.lost_answers).then(|| {
            *self.rng(|rng| {
                rng.choice(&[CONNECTION_CLOSED, TRUNCATED])
                    .expect("messages")
            })
        });
        RequestPlan {
            to_store,
            back,
            refused,
            lost,
        }
    }

    /// Pauses `node` now, and resumes it after `lasts` (unless something else did first).
    pub(super) fn pause(self: &std::sync::Arc<World>, node: usize, lasts: Duration) {
        self.changing(node);
        self.paused[node].send_replace(true);
        let world = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(lasts).await;
            world.changing(node);
            world.paused[node].send_replace(false);
        });
    }

    /// Starts the pause armed to strike at `node`'s next request, if one is.
    pub(super) fn strike_armed_pause(self: &std::sync::Arc<World>, node: usize) {
        let armed = self.pause_at_next_send[node].lock().expect("armed").take();
        if let Some(lasts) = armed {
            self.pause(node, lasts);
        }
    }

    /// Waits while `node` is paused.
    pub(super) async fn running(&self, node: usize) {
        let mut paused = self.paused[node].subscribe();
        let _ = paused.wait_for(|paused| !paused).await;
    }

    pub(super) fn cut_from_store(&self, node: usize) -> bool {
        self.nodes[node].lock().expect("node").cut_from_store
    }

    /// Whether `node` answers the others right now: up, not paused, not isolated.
    fn answering(&self, node: usize) -> bool {
        let state = self.nodes[node].lock().expect("node");
        !state.down && !state.isolated && !*self.paused[node].borrow()
    }

    /// Records that `node`'s reachability may have changed (call before changing it).
    pub(super) fn changing(&self, node: usize) {
        let seen = self.seen(node);
        let mut state = self.nodes[node].lock().expect("node");
        state.seen_before = seen;
        state.changed = Some(Instant::now());
    }

    /// Whether the others count `node` as a member: what it is now, once the failure
    /// detector's delay has passed since its last change.
    fn seen(&self, node: usize) -> bool {
        let answering = self.answering(node);
        let state = self.nodes[node].lock().expect("node");
        match state.changed {
            Some(changed) if changed.elapsed() < DETECT => state.seen_before,
            _ => answering,
        }
    }

    /// The members `node` sees (their names): itself, and every other node the failure
    /// detector counts, unless one of the two is isolated.
    pub(super) fn view_of(&self, node: usize) -> Vec<String> {
        let isolated = self.nodes[node].lock().expect("node").isolated;
        (0..self.nodes.len())
            .filter(|&other| other == node || (!isolated && self.seen(other)))
            .map(node_name)
            .collect()
    }

    /// The members a client sees: every node the failure detector counts.
    pub(super) fn client_view(&self) -> Vec<String> {
        (0..self.nodes.len())
            .filter(|&node| self.seen(node))
            .map(node_name)
            .collect()
    }
}

pub(super) fn node_name(node: usize) -> String {
    format!("n{node}")
}
