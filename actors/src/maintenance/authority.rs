//! Authority over a repo's mutable objects, for the cache tier.
//!
//! A node may serve a repo's listings, HEADs and text files from memory only if every change
//! to the repo passes through it. Two leases cover every writer: the writer lease (request
//! writes, index builds, the recovery sweep, which takes it too) and the compaction lease
//! (optimize and cleanup). A node that holds both, and keeps both, is the repo's authority:
//! no other process may write meanwhile. It must also maintain the repo itself, since no
//! worker can take the compaction lease from it; so only a node with the worker role claims
//! authority, and a serve-only node keeps reading those objects from the store.
//!
//! The claim is made at activation, before the engine is opened with the engine's
//! read-write open (the only open that takes a custom storage adapter), whose recovery sweep
//! must never run while another process is mid-write: so the claim also requires that no
//! recovery sidecar is pending, a check made once the leases are held. Residue is swept by the recovery actor, and the repo stays
//! non-authoritative until it is next activated.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{debug, info};

use super::{Held, RepoMaintenance};
use crate::cache::Authority;

impl RepoMaintenance {
    /// Takes the writer and compaction leases if both are free (or ours), and returns the
    /// check that both are still held at the same epochs. `None`: this node reads the repo's
    /// mutable objects from the store (the writer lease, if taken, is kept all the same).
    ///
    /// The claim is not complete until [`RepoMaintenance::no_recovery_pending`] has also
    /// answered true; the caller runs that check alongside its prefetch (one round trip
    /// instead of two) and withdraws with [`RepoMaintenance::give_up_authority`] otherwise.
    pub(crate) async fn claim_authority(&self) -> Option<Authority> {
        self.keeps_compaction.store(false, Ordering::SeqCst);
        if !self.settings.enabled || !self.cache.node.enabled() {
            return None;
        }
        // A free writer lease placed on another node is left for it.
        if !self.placed_here().await {
            return None;
        }
        // Both at once: one round trip to the store instead of two.
        let had_compaction = self.compaction.live().is_some();
        let (writer, compaction) = tokio::join!(self.writer.ensure(), self.compaction.ensure());
        let (writer, compaction) = match (writer, compaction) {
            (Ok(Held::Ours(writer)), Ok(Held::Ours(compaction))) => (writer, compaction),
            (writer, compaction) => {
                if let Ok(Held::Other(record)) = writer {
                    debug!(repo = %self.key, holder = %record.holder, "writer elsewhere: not the cache authority");
                }
                if !had_compaction && matches!(compaction, Ok(Held::Ours(_))) {
                    self.compaction.release().await;
                }
                return None;
            }
        };
        self.keeps_compaction.store(true, Ordering::SeqCst);
        info!(repo = %self.key, writer, compaction, "cache authority: writer and compaction leases held");
        let (writer_lease, compaction_lease) =
            (Arc::clone(&self.writer), Arc::clone(&self.compaction));
        Some(Arc::new(move || {
            writer_lease.live() == Some(writer) && compaction_lease.live() == Some(compaction)
        }))
    }

    /// Whether no recovery sidecar is pending: the engine's read-write open sweeps them, which
    /// must never happen while another process may be mid-write (a failed listing is a no).
    pub(crate) async fn no_recovery_pending(&self) -> bool {
        matches!(self.store.recovery_sidecars(&self.key).await, Ok(0))
    }

    /// Withdraws a claim whose engine could not be opened: the compaction lease goes back.
    pub(crate) async fn give_up_authority(&self) {
        self.keeps_compaction.store(false, Ordering::SeqCst);
        self.compaction.release().await;
    }

    /// Gives the compaction lease back after a run, unless the repo's authority keeps it.
    pub(crate) async fn release_compaction(&self) {
        if !self.keeps_compaction.load(Ordering::SeqCst) {
            self.compaction.release().await;
        }
    }
}
