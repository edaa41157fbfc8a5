//! Fair shares of the node's cores for reads: `limits.node.max_concurrent_reads` reads run at
//! once (default: one per core); past that, reads wait for a slot, and a freed slot goes to
//! the waiting tenant with the fewest reads running, first come first served within a
//! tenant. A tenant alone on the node may use every slot; beside others it cannot keep them
//! from a slot for longer than one of its reads takes. Waiting counts toward the read's
//! deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use omnigraph_cloud_config::TenantId;
use tokio::sync::oneshot;

/// The node's read slots.
pub(crate) struct FairShare {
    state: Mutex<State>,
}

struct State {
    free: usize,
    running: HashMap<TenantId, usize>,
    waiting: HashMap<TenantId, VecDeque<oneshot::Sender<Slot>>>,
}

/// A read's slot, given back when dropped (to the next waiter, if any).
pub(crate) struct Slot {
    share: Option<Arc<FairShare>>,
    tenant: TenantId,
}

impl FairShare {
    pub(crate) fn new(slots: usize) -> Arc<FairShare> {
        Arc::new(FairShare {
            state: Mutex::new(State {
                free: slots,
                running: HashMap::new(),
                waiting: HashMap::new(),
            }),
        })
    }

    /// A slot for a read of `tenant`, at once if one is free and nobody waits, else when the
    /// tenant's turn comes.
    pub(crate) async fn acquire(self: &Arc<Self>, tenant: &TenantId) -> Slot {
        let granted = {
            let mut state = self.state();
            if state.free > 0 && state.waiting.is_empty() {
                return state.take(self, tenant);
            }
            let (grant, granted) = oneshot::channel();
            state
                .waiting
                .entry(tenant.clone())
                .or_default()
                .push_back(grant);
            granted
        };
        // The sender is dropped only by granting through it.
        granted.await.expect("a waiting read is granted its slot")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fair share lock")
    }

    fn release(self: &Arc<Self>, tenant: &TenantId) {
        let mut state = self.state();
        state.free += 1;
        if let Some(running) = state.running.get_mut(tenant) {
            *running -= 1;
            if *running == 0 {
                state.running.remove(tenant);
            }
        }
        state.grant(self);
    }
}

impl State {
    fn take(&mut self, share: &Arc<FairShare>, tenant: &TenantId) -> Slot {
        self.free -= 1;
        *self.running.entry(tenant.clone()).or_default() += 1;
        Slot {
            share: Some(Arc::clone(share)),
            tenant: tenant.clone(),
        }
    }

    /// Hands free slots to waiters, the tenant with the fewest reads running first.
    fn grant(&mut self, share: &Arc<FairShare>) {
        while self.free > 0 {
            let next = self
                .waiting
                .keys()
                .min_by_key(|tenant| self.running.get(*tenant).copied().unwrap_or(0))
                .cloned();
            let Some(tenant) = next else { return };
            let queue = self.waiting.get_mut(&tenant).expect("a waiting tenant");
            let grant = queue.pop_front().expect("queues are never left empty");
            if queue.is_empty() {
                self.waiting.remove(&tenant);
            }
            let slot = self.take(share, &tenant);
            if let Err(mut unwanted) = grant.send(slot) {
                // The read stopped waiting (its deadline passed): undo, under this lock.
                unwanted.share = None;
                self.free += 1;
                if let Some(running) = self.running.get_mut(&tenant) {
                    *running -= 1;
                    if *running == 0 {
                        self.running.remove(&tenant);
                    }
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(share) = self.share.take() {
            share.release(&self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).unwrap()
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_tenant_with_fewer_reads_running() {
        let share = FairShare::new(2);
        let (noisy, quiet) = (tenant("noisy"), tenant("quiet"));
        let first = share.acquire(&noisy).await;
        let second = share.acquire(&noisy).await;
        // Both slots taken: the noisy tenant queues two more, then the quiet one arrives.
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let (share, noisy) = (Arc::clone(&share), noisy.clone());
                tokio::spawn(async move { share.acquire(&noisy).await })
            })
            .collect();
        tokio::task::yield_now().await;
        let quiet_read = {
            let (share, quiet) = (Arc::clone(&share), quiet.clone());
            tokio::spawn(async move { share.acquire(&quiet).await })
        };
        tokio::task::yield_now().await;
        drop(first);
        let slot = quiet_read.await.unwrap();
        assert_eq!(slot.tenant, quiet, "the quiet tenant went first");
        assert!(queued.iter().all(|read| !read.is_finished()));
        drop((slot, second));
        for read in queued {
            assert_eq!(read.await.unwrap().tenant, noisy);
        }
        assert_eq!(share.state().free, 2, "every slot came back");
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_takes_no_slot() {
        let share = FairShare::new(1);
        let t = tenant("t");
        let held = share.acquire(&t).await;
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), share.acquire(&t));
        assert!(gave_up.await.is_err());
        drop(held);
        assert_eq!(share.state().free, 1);
        let _again = share.acquire(&t).await;
        assert_eq!(share.state().free, 0);
    }
}
