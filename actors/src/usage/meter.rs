//! The node's usage counts since the last flush, by tenant, graph and second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use omnigraph_cloud_cluster::Clock;
use omnigraph_cloud_config::TenantId;

use super::{Counts, GraphUsage};
use crate::RepoKey;

/// Counts usage; cheap to share (`Arc`). Every count lands in the current wall-clock second.
#[derive(Debug)]
pub struct UsageMeter {
    clock: Clock,
    pending: Mutex<BTreeMap<(String, String), Pending>>,
}

#[derive(Debug, Default)]
struct Pending {
    active: BTreeSet<u64>,
    seconds: BTreeMap<u64, Counts>,
}

impl UsageMeter {
    pub fn new(clock: Clock) -> UsageMeter {
        UsageMeter {
            clock,
            pending: Mutex::default(),
        }
    }

    fn second(&self) -> u64 {
        self.clock.wall_ms() / 1000
    }

    fn counts(&self, tenant: &str, graph: &str, count: impl FnOnce(&mut Counts)) {
        let second = self.second();
        let mut pending = self.pending.lock().expect("usage lock");
        let entry = pending
            .entry((tenant.to_string(), graph.to_string()))
            .or_default();
        count(entry.seconds.entry(second).or_default());
    }

    /// A request of `kind` (`read`, `write`, `manage`) admitted for the graph. Warm seconds
    /// are counted apart, from the graphs actually warm (a request may name a graph that does
    /// not exist, or one warm on another node).
    pub fn request(&self, key: &RepoKey, kind: &str) {
        self.counts(key.tenant.as_str(), key.graph.as_str(), |counts| {
            *counts.requests.entry(kind.to_string()).or_default() += 1;
        });
    }

    /// A request of `kind` answered for the tenant outside any graph (listing, creating).
    pub fn tenant_request(&self, tenant: &TenantId, kind: &str) {
        self.counts(tenant.as_str(), "", |counts| {
            *counts.requests.entry(kind.to_string()).or_default() += 1;
        });
    }

    /// An object-store request of `op` moving `bytes`, for a graph of `tenant` (`None`: for
    /// the tenant outside any graph).
    pub fn store(&self, tenant: &TenantId, graph: Option<&str>, op: &str, bytes: u64) {
        self.counts(tenant.as_str(), graph.unwrap_or(""), |counts| {
            *counts
                .store_requests
                .entry(op.to_ascii_lowercase())
                .or_default() += 1;
            if bytes > 0 {
                *counts
                    .store_bytes
                    .entry(op.to_ascii_lowercase())
                    .or_default() += bytes;
            }
        });
    }

    /// Bytes of an object-store request counted already (a read's body, known at its end).
    pub fn store_bytes(&self, key: &RepoKey, op: &str, bytes: u64) {
        self.counts(key.tenant.as_str(), key.graph.as_str(), |counts| {
            *counts.store_bytes.entry(op.to_string()).or_default() += bytes;
        });
    }

    /// The graph is warm this second.
    pub fn active(&self, key: &RepoKey) {
        let second = self.second();
        let mut pending = self.pending.lock().expect("usage lock");
        pending
            .entry((key.tenant.to_string(), key.graph.to_string()))
            .or_default()
            .active
            .insert(second);
    }

    /// Everything counted so far, taken out of the meter.
    pub fn take(&self) -> Vec<GraphUsage> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("usage lock"));
        pending
            .into_iter()
            .map(|((tenant, graph), pending)| GraphUsage {
                tenant,
                graph,
                active: ranges(&pending.active),
                seconds: pending.seconds,
            })
            .collect()
    }
}

/// Sorted seconds as inclusive ranges of consecutive ones.
fn ranges(seconds: &BTreeSet<u64>) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for &second in seconds {
        match out.last_mut() {
            Some(range) if range[1] + 1 == second => range[1] = second,
            _ => out.push([second, second]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_seconds_make_one_range() {
        let seconds: BTreeSet<u64> = [3, 4, 5, 9, 10, 12].into();
        assert_eq!(ranges(&seconds), vec![[3, 5], [9, 10], [12, 12]]);
    }
}
