//! `LeaseHolder`: one lease of one repo as this process holds it, renewed in the background.
//!
//! The renewer is a task of its own, not a message in an actor's mailbox, so a long publish or
//! compaction cannot delay renewal. Whoever acts under the lease asks [`LeaseHolder::live`]
//! first (a local check, no request) and [`LeaseHolder::validate`] before anything destructive
//! (a read of the lease object). A lease that could not be renewed is dropped here at its
//! deadline, so every later check refuses.

use std::sync::{Arc, Weak};

use omnigraph_cloud_cluster::lease::{
    Acquired, Lease, LeaseError, LeaseKind, LeaseLost, LeaseRecord, LeaseStore,
};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::RepoKey;
use crate::metrics::LeaseMetrics;

pub(crate) struct LeaseHolder {
    store: LeaseStore,
    key: RepoKey,
    kind: LeaseKind,
    holder: Arc<str>,
    metrics: LeaseMetrics,
    state: Mutex<HolderState>,
    /// Epoch and deadline of the lease held, readable without waiting for a renewal, and
    /// watched by [`Fence`]s.
    view: watch::Sender<Option<(u64, Instant)>>,
}

#[derive(Default)]
struct HolderState {
    lease: Option<Lease>,
    renewer: Option<JoinHandle<()>>,
    /// Why the last lease held here ended other than by release (for the admin view).
    last_loss: Option<LeaseLost>,
    /// The epoch of that lease: a record of ours at it may be taken over at once.
    lost_epoch: Option<u64>,
}

/// What [`LeaseHolder::ensure`] found.
// Returned once per lease check and matched at once: boxing the record would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Held {
    /// The lease is ours, at this epoch.
    Ours(u64),
    /// Someone else holds it.
    Other(LeaseRecord),
}

impl LeaseHolder {
    pub(crate) fn new(
        store: LeaseStore,
        key: RepoKey,
        kind: LeaseKind,
        holder: Arc<str>,
        metrics: LeaseMetrics,
    ) -> Arc<LeaseHolder> {
        Arc::new(LeaseHolder {
            store,
            key,
            kind,
            holder,
            metrics,
            state: Mutex::new(HolderState::default()),
            view: watch::Sender::new(None),
        })
    }

    pub(crate) fn kind(&self) -> LeaseKind {
        self.kind
    }

    pub(crate) fn store(&self) -> &LeaseStore {
        &self.store
    }

    /// Holds the lease, acquiring it if this process does not hold a live one. Never waits
    /// for another holder.
    pub(crate) async fn ensure(self: &Arc<Self>) -> Result<Held, LeaseError> {
        let mut state = self.state.lock().await;
        if let Some(lease) = &state.lease {
            if lease.is_live() {
                return Ok(Held::Ours(lease.epoch()));
            }
            self.forget(&mut state, LeaseLost::Expired);
        }
        match self
            .store
            .reacquire(&self.key, self.kind, &self.holder, state.lost_epoch)
            .await?
        {
            Acquired::Acquired(lease) => {
                let epoch = lease.epoch();
                info!(repo = %self.key, kind = %self.kind, epoch, "lease acquired");
                self.metrics.acquired(self.kind);
                self.show(Some(&lease));
                state.lease = Some(lease);
                state.renewer = Some(tokio::spawn(renew_loop(Arc::downgrade(self))));
                Ok(Held::Ours(epoch))
            }
            Acquired::Held(record) => Ok(Held::Other(record)),
        }
    }

    /// The epoch of the live lease this process holds, if any. No request, no wait.
    pub(crate) fn live(&self) -> Option<u64> {
        let view = *self.view.borrow();
        view.filter(|(_, deadline)| Instant::now() < *deadline)
            .map(|(epoch, _)| epoch)
    }

    /// How long the holder may still act under the lease it holds (zero if none).
    pub(crate) fn remaining(&self) -> std::time::Duration {
        let view = *self.view.borrow();
        view.map(|(_, deadline)| deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    fn show(&self, lease: Option<&Lease>) {
        self.view
            .send_replace(lease.map(|lease| (lease.epoch(), lease.deadline())));
    }

    /// The fence of the lease this process holds at `epoch`: see [`Fence`].
    pub(crate) fn fence(&self, epoch: u64) -> Fence {
        Fence {
            view: self.view.subscribe(),
            epoch,
        }
    }

    /// Confirms against the store that the lease is still ours; drops it if not.
    pub(crate) async fn validate(&self) -> Result<u64, LeaseError> {
        let mut state = self.state.lock().await;
        let Some(lease) = &state.lease else {
            return Err(state.last_loss.clone().unwrap_or(LeaseLost::Expired).into());
        };
        match self.store.validate(lease).await {
            Ok(()) => Ok(lease.epoch()),
            Err(LeaseError::Lost(lost)) => {
                self.forget(&mut state, lost.clone());
                Err(lost.into())
            }
            Err(err) => Err(err),
        }
    }

    /// Why the last lease ended other than by release.
    pub(crate) async fn last_loss(&self) -> Option<LeaseLost> {
        self.state.lock().await.last_loss.clone()
    }

    /// Gives the lease up (a write), if held.
    pub(crate) async fn release(&self) {
        let mut state = self.state.lock().await;
        if let Some(renewer) = state.renewer.take() {
            renewer.abort();
        }
        let Some(lease) = state.lease.take() else {
            return;
        };
        self.show(None);
        self.metrics.released(self.kind);
        if !lease.is_live() {
            return; // nothing to give back: it may already be someone else's
        }
        match self.store.release(lease).await {
            Ok(()) => info!(repo = %self.key, kind = %self.kind, "lease released"),
            Err(err) => {
                warn!(repo = %self.key, kind = %self.kind, error = %err, "could not release lease; it will expire")
            }
        }
    }

    fn forget(&self, state: &mut HolderState, why: LeaseLost) {
        self.show(None);
        if let Some(lease) = state.lease.take() {
            warn!(repo = %self.key, kind = %self.kind, reason = %why, "lease lost; stopped acting under it");
            self.metrics.lost(self.kind);
            state.last_loss = Some(why);
            state.lost_epoch = Some(lease.epoch());
        }
        if let Some(renewer) = state.renewer.take() {
            renewer.abort();
        }
    }
}

/// The moment work done under one epoch of a lease must stop: the holder's self-fencing
/// deadline (last successful renewal + TTL - safety margin), which each renewal moves forward,
/// or the moment the lease is lost or released. Work that runs past it, such as a publish
/// stalled on a slow store or a paused process, is cancelled rather than finished under a
/// lease someone else may already hold.
pub(crate) struct Fence {
    view: watch::Receiver<Option<(u64, Instant)>>,
    epoch: u64,
}

impl Fence {
    /// A fence that stays open for an hour: for unit tests of fenced work.
    #[cfg(test)]
    pub(crate) fn open_for_tests() -> Fence {
        Fence::open_for_tests_during(std::time::Duration::from_secs(3600))
    }

    /// A fence that stays open for `open` from now: for unit tests of fenced work.
    #[cfg(test)]
    pub(crate) fn open_for_tests_during(open: std::time::Duration) -> Fence {
        let deadline = Instant::now() + open;
        let (holder, view) = watch::channel(Some((1, deadline)));
        // The holder must outlive the fence: a dropped holder passes it.
        std::mem::forget(holder);
        Fence { view, epoch: 1 }
    }

    /// Completes when work under the fenced epoch may no longer go on.
    pub(crate) async fn passed(&mut self) {
        loop {
            let deadline = match *self.view.borrow_and_update() {
                Some((epoch, deadline)) if epoch == self.epoch => deadline,
                _ => return, // lost, released, or replaced by a later epoch
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                changed = self.view.changed() => {
                    if changed.is_err() {
                        return; // the holder is gone
                    }
                }
            }
        }
    }

    /// The lease epoch this fence guards.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether work under the fenced epoch may still start now.
    pub(crate) fn open(&self) -> bool {
        matches!(*self.view.borrow(), Some((epoch, deadline))
            if epoch == self.epoch && Instant::now() < deadline)
    }

    /// Runs `work` until it finishes or the fence is passed; `None` when it was cut short, or
    /// not started because the fence had already passed.
    pub(crate) async fn run<T>(&mut self, work: impl std::future::Future<Output = T>) -> Option<T> {
        if !self.open() {
            return None;
        }
        tokio::select! {
            biased;
            output = work => Some(output),
            () = self.passed() => None,
        }
    }
}

impl Drop for LeaseHolder {
    fn drop(&mut self) {
        if let Ok(state) = self.state.try_lock()
            && let Some(renewer) = &state.renewer
        {
            renewer.abort();
        }
    }
}

/// Renews every `renew_every` until the lease is released or lost.
async fn renew_loop(holder: Weak<LeaseHolder>) {
    loop {
        let period = match holder.upgrade() {
            Some(holder) => holder.store.timing().renew_every(),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(holder) = holder.upgrade() else {
            return;
        };
        let mut state = holder.state.lock().await;
        let Some(lease) = state.lease.as_mut() else {
            return;
        };
        match holder.store.renew(lease).await {
            Ok(()) => holder.show(Some(lease)),
            Err(LeaseError::Lost(lost)) => {
                state.renewer = None; // this task: it ends here
                holder.forget(&mut state, lost);
                return;
            }
            Err(err) => {
                holder.metrics.renewal_failed(holder.kind);
                warn!(repo = %holder.key, kind = %holder.kind, error = %err, "lease renewal failed; will retry");
                if !lease.is_live() {
                    state.renewer = None;
                    holder.forget(&mut state, LeaseLost::Expired);
                    return;
                }
            }
        }
    }
}
