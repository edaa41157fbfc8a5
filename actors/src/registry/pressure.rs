//! Eviction under pressure: graphs leave memory, least recently used first, before the node
//! runs short, not only once idle.
//!
//! - **The warm cap** (`actors.max_warm_graphs`): every activation first takes a seat; when
//!   the seats are all taken it evicts the least recently used graph that has nothing in
//!   flight. If every warm graph is busy the activation is refused with 503: the cap is a
//!   bound, not a target.
//! - **Memory** (`node.memory_budget`): while the process's resident memory is above 90 % of
//!   the budget, the node's memory watch asks for a quarter of the unused warm graphs to go
//!   ([`Registry::shed_for_memory`]). Each graph's engine handle holds Lance's session caches
//!   (table handles, metadata, index caches), which are the memory that grows with the number
//!   of warm graphs.
//!
//! An evicted graph is stopped as an idle one is (its writes flushed, its leases released);
//! its next request activates it again from object storage.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::info;

use super::{Inner, Registry, stop_repo};
use crate::metrics::PressureReason;
use crate::repo::RepoHandle;
use crate::{RepoError, RepoKey};

/// A seat among the node's warm graphs, taken by an activation: given back when dropped,
/// unless [`Seat::keep`] hands it to the repo (whose stop gives it back).
pub(super) struct Seat {
    inner: Option<Arc<Inner>>,
}

impl Seat {
    pub(super) fn keep(mut self) {
        self.inner = None;
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.seats.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Registry {
    /// Takes a seat for activating `key`. Past the cap, the activation evicts one graph, the
    /// least recently used: each activation over the cap frees the seat it took, so
    /// concurrent activations evict no more than they need.
    pub(super) async fn take_seat(&self, key: &RepoKey) -> Result<Seat, RepoError> {
        let cap = self.inner.settings.max_warm_graphs;
        let taken = self.inner.seats.fetch_add(1, Ordering::SeqCst) + 1;
        let seat = Seat {
            inner: Some(Arc::clone(&self.inner)),
        };
        if taken <= cap {
            return Ok(seat);
        }
        let evicted = self
            .evict_least_recent(1, Some(key), PressureReason::WarmCap)
            .await;
        if evicted == 0 {
            return Err(RepoError::unavailable(format!(
                "the node holds its most warm graphs (actors.max_warm_graphs = {cap}) and all \
                 are in use; retry"
            )));
        }
        Ok(seat)
    }

    /// Evicts the least recently used quarter (at least one) of the warm graphs that have
    /// nothing in flight: the node's answer to resident memory above 90 % of its budget.
    /// How many were evicted.
    pub async fn shed_for_memory(&self) -> usize {
        let unused = self.unused_by_age(None).len();
        if unused == 0 {
            return 0;
        }
        let count = unused.div_ceil(4);
        self.evict_least_recent(count, None, PressureReason::Memory)
            .await
    }

    /// The warm graphs other than `except` with nothing in flight, least recently used first.
    fn unused_by_age(&self, except: Option<&RepoKey>) -> Vec<(Instant, RepoHandle)> {
        let mut unused: Vec<(Instant, RepoHandle)> = self
            .inner
            .slots
            .iter()
            .filter(|slot| except != Some(slot.key()))
            .filter_map(|slot| slot.handle.get().cloned())
            .filter_map(|handle| Some((handle.shared.activity.idle_since()?, handle)))
            .collect();
        unused.sort_by_key(|(since, _)| *since);
        unused
    }

    /// Evicts up to `count` unused graphs other than `except`, least recently used first;
    /// how many. A graph that a request reached meanwhile is skipped.
    async fn evict_least_recent(
        &self,
        count: usize,
        except: Option<&RepoKey>,
        reason: PressureReason,
    ) -> usize {
        let mut evicted = 0;
        for (since, handle) in self.unused_by_age(except) {
            if evicted == count {
                break;
            }
            if !handle.shared.activity.close_if_unused() {
                continue;
            }
            info!(
                repo = %handle.shared.key,
                reason = reason.as_str(),
                unused_ms = since.elapsed().as_millis() as u64,
                "evicting the least recently used repo"
            );
            stop_repo(&handle, self.inner.settings.call_timeout).await;
            self.inner.metrics.pressure_evictions(reason).inc();
            evicted += 1;
        }
        evicted
    }
}
