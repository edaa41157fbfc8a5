//! The seeded schedule of faults a simulated run suffers, and applying it to the world.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigraph_cloud_cluster::lease::LeaseTiming;

use super::node::{self, Booted};
use super::world::{StoreFaults, World};

/// One fault, from its start for its duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// kill -9, restarted when it ends.
    Crash { node: usize },
    /// SIGSTOP, SIGCONT when it ends: the node stops wherever it waits.
    Pause { node: usize },
    /// SIGSTOP striking at the node's next request to the store, for the fault's duration:
    /// the node stops between two steps of its work, after the one before and before that
    /// request is sent.
    PauseMidStep { node: usize },
    /// The node cannot reach the store (requests time out).
    CutFromStore { node: usize },
    /// The node and the others cannot reach each other.
    Isolate { node: usize },
    /// A share of store requests is refused.
    StoreErrors { rate: f64 },
    /// A share of store requests lands but loses its answer.
    LostAnswers { rate: f64 },
    /// A share of store requests takes seconds.
    Stragglers { rate: f64 },
}

/// A fault at a time in the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scheduled {
    pub at: Duration,
    pub lasts: Duration,
    pub fault: Fault,
}

/// Draws a schedule for a run of `duration` over `nodes` nodes: a fault every 0.5 to 4 s,
/// each lasting 0.3 to 8 s (long enough, often, for a lease to expire under it).
pub(super) fn schedule(world: &World, nodes: usize, duration: Duration) -> Vec<Scheduled> {
    let mut faults = Vec::new();
    let mut at = Duration::from_millis(world.rng(|rng| rng.u64(200..2_000)));
    while at < duration {
        let lasts = Duration::from_millis(world.rng(|rng| rng.u64(300..8_000)));
        let node = world.rng(|rng| rng.usize(0..nodes));
        let rate = world.rng(|rng| rng.f64()) * 0.5;
        let fault = match world.rng(|rng| rng.u8(0..8)) {
            0 => Fault::Crash { node },
            1 => Fault::Pause { node },
            2 => Fault::PauseMidStep { node },
            3 => Fault::CutFromStore { node },
            4 => Fault::Isolate { node },
            5 => Fault::StoreErrors { rate },
            6 => Fault::LostAnswers { rate },
            _ => Fault::Stragglers { rate },
        };
        faults.push(Scheduled { at, lasts, fault });
        at += Duration::from_millis(world.rng(|rng| rng.u64(500..4_000)));
    }
    faults
}

/// The nodes' running incarnations (`None` while crashed), and how to start them again.
pub(super) struct Cluster {
    pub world: Arc<World>,
    pub nodes: Mutex<Vec<Option<Booted>>>,
    boots: Mutex<Vec<u32>>,
    skews: Vec<i64>,
    timing: LeaseTiming,
}

impl Cluster {
    pub(super) fn start(world: Arc<World>, count: usize, timing: LeaseTiming) -> Cluster {
        // Clocks disagree by less than the lease's safety margin: the protocol's assumption.
        let bound = (timing.safety_margin.as_millis() / 2) as i64;
        let skews: Vec<i64> = (0..count)
            .map(|_| world.rng(|rng| rng.i64(-bound + 1..bound)))
            .collect();
        let cluster = Cluster {
            world,
            nodes: Mutex::new((0..count).map(|_| None).collect()),
            boots: Mutex::new(vec![0; count]),
            skews,
            timing,
        };
        for node in 0..count {
            cluster.restart(node);
        }
        cluster
    }

    fn restart(&self, node: usize) {
        let boot = {
            let mut boots = self.boots.lock().expect("boots");
            boots[node] += 1;
            boots[node]
        };
        let booted = node::boot(&self.world, node, boot, self.timing, self.skews[node]);
        self.nodes.lock().expect("nodes")[node] = Some(booted);
    }

    fn set_node(&self, node: usize, change: impl FnOnce(&mut super::world::NodeState)) {
        self.world.changing(node);
        change(&mut self.world.nodes[node].lock().expect("node"));
    }

    /// Starts `fault` (`true`) or ends it (`false`); `lasts` is how long it was scheduled for.
    pub(super) fn apply(&self, fault: Fault, start: bool, lasts: Duration) {
        match fault {
            Fault::Crash { node } => {
                let down = self.world.nodes[node].lock().expect("node").down;
                if start && !down {
                    self.set_node(node, |state| state.down = true);
                    if let Some(booted) = self.nodes.lock().expect("nodes")[node].take() {
                        booted.crash();
                    }
                } else if !start && down {
                    self.set_node(node, |state| state.down = false);
                    self.restart(node);
                }
            }
            Fault::Pause { node } => {
                self.world.changing(node);
                self.world.paused[node].send_replace(start);
            }
            Fault::PauseMidStep { node } => {
                // Armed at the start (the pause lasts its own time from when it strikes);
                // disarmed at the end if it never struck.
                let mut armed = self.world.pause_at_next_send[node].lock().expect("armed");
                *armed = start.then_some(lasts);
            }
            Fault::CutFromStore { node } => {
                self.world.nodes[node].lock().expect("node").cut_from_store = start;
            }
            Fault::Isolate { node } => self.set_node(node, |state| state.isolated = start),
            Fault::StoreErrors { rate } => self.store(|faults| faults.errors = on(start, rate)),
            Fault::LostAnswers { rate } => {
                self.store(|faults| faults.lost_answers = on(start, rate))
            }
            Fault::Stragglers { rate } => self.store(|faults| faults.stragglers = on(start, rate)),
        }
    }

    fn store(&self, change: impl FnOnce(&mut StoreFaults)) {
        change(&mut self.world.store.lock().expect("store faults"));
    }

    /// Ends every fault: the store calm, every node running, reachable and up.
    pub(super) fn heal(&self) {
        *self.world.store.lock().expect("store faults") = StoreFaults::CALM;
        for node in 0..self.world.nodes.len() {
            for fault in [
                Fault::Crash { node },
                Fault::Pause { node },
                Fault::PauseMidStep { node },
                Fault::CutFromStore { node },
                Fault::Isolate { node },
            ] {
                self.apply(fault, false, Duration::ZERO);
            }
        }
    }
}

fn on(start: bool, rate: f64) -> f64 {
    if start { rate } else { 0.0 }
}
