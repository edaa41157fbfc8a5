//! The state every connection of a proxy shares: the upstream client, the faults in force,
//! the request counters, and the bookkeeping of held requests.

use std::sync::{Mutex, RwLock};

use super::faults::{Faults, Op, holds};
use super::stats::Stats;

pub(super) struct Shared {
    pub(super) upstream: String,
    pub(super) client: reqwest::Client,
    pub(super) faults: RwLock<Faults>,
    pub(super) stats: Mutex<Stats>,
    /// Woken whenever the faults change, for held requests to look again.
    faults_changed: tokio::sync::Notify,
    /// Requests held so far per hold rule (by its position), for `max_held`.
    held_per_rule: Mutex<Vec<u64>>,
}

impl Shared {
    /// No faults and no requests counted yet; `upstream` is `http://host:port`.
    pub(super) fn new(upstream: &str, client: reqwest::Client) -> Shared {
        Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            faults: RwLock::new(Faults::default()),
            stats: Mutex::new(Stats::default()),
            faults_changed: tokio::sync::Notify::new(),
            held_per_rule: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn set_faults(&self, faults: Faults) {
        let mut current = self.faults.write().expect("faults lock");
        // A hold rule's count lives as long as the rule: changing other faults keeps it.
        if current.holds != faults.holds {
            *self.held_per_rule.lock().expect("hold lock") = vec![0; faults.holds.len()];
        }
        *current = faults;
        drop(current);
        self.faults_changed.notify_waiters();
    }

    /// Counts a request seen, before faults are applied.
    pub(super) fn record(&self, op: Op, bucket: &str, key: &str) {
        self.stats
            .lock()
            .expect("stats lock")
            .record(op, bucket, key);
    }

    /// Whether a hold rule takes this request (counting it against the rule's `max_held`).
    pub(super) fn take_hold(&self, faults: &Faults, op: Op, key: &str) -> bool {
        let mut held = self.held_per_rule.lock().expect("hold lock");
        held.resize(faults.holds.len(), 0);
        for (index, rule) in faults.holds.iter().enumerate() {
            let matches = holds(rule, op, key);
            if matches && rule.max_held.is_none_or(|max| held[index] < max) {
                held[index] += 1;
                return true;
            }
        }
        false
    }

    /// Waits until the faults change so that `rule` (what held the request) is gone.
    pub(super) async fn wait_for_release(&self, rule: &Faults) {
        loop {
            let changed = self.faults_changed.notified();
            if self.faults.read().expect("faults lock").holds != rule.holds {
                return;
            }
            changed.await;
        }
    }
}
