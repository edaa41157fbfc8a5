//! The node's memory against its budget (`node.memory_budget`): the process's resident set,
//! sampled every few seconds, is published on `/metrics` next to the budget. While it is above
//! 90 % of the budget, every sample evicts the least recently used quarter of the warm graphs
//! with nothing in flight (scale-to-zero when memory is short, not only when idle).

use std::time::Duration;

use omnigraph_cloud_actors::Registry as Repos;
use omnigraph_cloud_config::MemoryBudget;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tracing::{info, warn};

const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The sampling task; stopped when dropped.
pub(crate) struct MemoryWatch(Option<JoinHandle<()>>);

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Registers the gauges and starts sampling (only where `/proc/self/status` exists).
pub(crate) fn watch(
    budget: MemoryBudget,
    cache_memory: usize,
    metrics: &mut Registry,
    repos: Repos,
) -> MemoryWatch {
    let budget_gauge: Gauge = Gauge::default();
    let resident: Gauge = Gauge::default();
    metrics.register(
        "omnigraph_node_memory_budget_bytes",
        "What the whole process may use (node.memory_budget)",
        budget_gauge.clone(),
    );
    metrics.register(
        "omnigraph_process_resident_bytes",
        "The process's resident memory, sampled every 5 s",
        resident.clone(),
    );
    budget_gauge.set(budget.bytes as i64);
    info!(
        budget = budget.bytes,
        source = budget.source.as_str(),
        cache_memory,
        "memory budget"
    );
    if resident_bytes().is_none() {
        return MemoryWatch(None);
    }
    let high = budget.bytes / 10 * 9;
    MemoryWatch(Some(tokio::spawn(async move {
        let mut above = false;
        // The resident memory after the last eviction round: another round only if memory
        // fell since (evictions help) or grew well past it (new graphs warmed meanwhile), so
        // that memory held elsewhere (the cache, the allocator) does not evict every graph.
        let mut after_shedding: Option<usize> = None;
        loop {
            if let Some(bytes) = resident_bytes() {
                resident.set(bytes as i64);
                if bytes > high && !above {
                    warn!(
                        resident = bytes,
                        budget = budget.bytes,
                        "resident memory above 90% of node.memory_budget; evicting the least \
                         recently used graphs"
                    );
                }
                above = bytes > high;
                let worth_it =
                    after_shedding.is_none_or(|last| bytes < last || bytes > last + last / 10);
                if above && worth_it {
                    repos.shed_for_memory().await;
                    after_shedding = resident_bytes();
                } else if !above {
                    after_shedding = None;
                }
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    })))
}

/// `VmRSS` of `/proc/self/status`, in bytes.
pub fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
