//! Where a request's reads and writes landed: the `__manifest` version of the branch read or
//! published, and the writer-lease epoch a write was published under. The edge puts them in
//! every answer, so that clients (and the chaos checker) can order what they saw.
//!
//! A request collects its stamp through [`collect`], a task-local scope around the request's
//! future: the repo handle records into it as reads and writes complete, in the caller's own
//! task, without any signature above the handle having to carry it.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use omnigraph::db::{Omnigraph, ReadTarget};

use crate::cache::{RepoCache, stale};

/// Where a read or a write landed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// The branch's `__manifest` version read, or reached by the write's publish.
    pub manifest_version: Option<u64>,
    /// The writer-lease epoch the write was published under; `None` for reads.
    pub lease_epoch: Option<u64>,
    /// For a stale-ok read: how long ago its snapshot was last confirmed the latest.
    pub snapshot_age: Option<Duration>,
}

/// What a request asked of its stamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadVersions {
    /// A read says its version when that costs no request to the store: on the graph's
    /// cache authority, or for a snapshot already read.
    #[default]
    WhenFree,
    /// A read confirms its version even where that costs one more request to the store.
    Confirm,
    /// A read accepts a snapshot up to `max_staleness` old, served from the last copies this
    /// node read (see [`crate::cache::stale`]), and says its version and age.
    StaleOk { max_staleness: Duration },
}

struct Current {
    stamp: Cell<Stamp>,
    reads: ReadVersions,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// Runs `request` and returns, with its output, the stamp of the last read or write it made
/// (default when it made none).
pub async fn collect<F: Future>(reads: ReadVersions, request: F) -> (F::Output, Stamp) {
    let current = Current {
        stamp: Cell::new(Stamp::default()),
        reads,
    };
    CURRENT
        .scope(current, async move {
            let ReadVersions::StaleOk { max_staleness } = reads else {
                let output = request.await;
                return (output, CURRENT.with(|current| current.stamp.get()));
            };
            let (output, age) = stale::scope(max_staleness, request).await;
            let mut stamp = CURRENT.with(|current| current.stamp.get());
            if stamp.manifest_version.is_some() {
                // No copy used: every answer the read needed was current.
                stamp.snapshot_age = Some(age.unwrap_or_default());
            }
            (output, stamp)
        })
        .await
}

/// Records `stamp` as the request's; nothing outside [`collect`].
pub(crate) fn record(stamp: Stamp) {
    let _ = CURRENT.try_with(|current| current.stamp.set(stamp));
}

/// Whether the request asked for read versions even at a cost, or reads stale-ok (where the
/// version comes from the copies the read uses anyway); false outside [`collect`].
fn confirm_asked() -> bool {
    CURRENT
        .try_with(|current| current.reads != ReadVersions::WhenFree)
        .unwrap_or(false)
}

/// Records, as the request's stamp, the version a read of `target` is about to see: for a
/// branch, its latest `__manifest` version, confirmed now, before the read. The engine does
/// not say which version a query resolved; it confirms the latest again itself, so the read
/// sees exactly this version unless a write lands in between, and never an older one. A
/// snapshot (a commit) is immutable: its version is the commit's.
///
/// On the cache authority the confirmation is answered from memory. Elsewhere it costs the
/// store requests of one more probe (a listing of `__manifest` and the schema files' HEADs,
/// about as much as a warm read), so it is made only when the request asked for it. A
/// failure records nothing: the read that follows fails the same way and explains why.
pub(crate) async fn read(cache: &RepoCache, engine: &Omnigraph, target: &ReadTarget) {
    if stale::active() {
        // Said after the read, from what it used ([`stale_read`]).
        return;
    }
    if !cache.authoritative() && !confirm_asked() {
        return;
    }
    let version = match target {
        ReadTarget::Branch(_) => cache.scope(engine.version_of(target.clone())).await,
        ReadTarget::Snapshot(id) => cache
            .scope(engine.get_commit(id.as_str()))
            .await
            .map(|commit| commit.manifest_version),
    };
    if let Ok(version) = version {
        record_read(version);
    }
}

/// Records, for a stale-ok read of `target` that succeeded, the version it read: the latest in
/// the `__manifest` listing it used, which its scope keeps. Without one (the authority serves
/// its live entries, unpinned) the version is confirmed, which costs nothing there.
pub(crate) async fn stale_read(cache: &RepoCache, engine: &Omnigraph, target: &ReadTarget) {
    if !stale::active() {
        return;
    }
    let version = match stale::manifest_version() {
        Some(version) => Ok(version),
        None => cache.scope(engine.version_of(target.clone())).await,
    };
    if let Ok(version) = version {
        record_read(version);
    }
}

/// Records `version` as the version the request read.
pub(crate) fn record_read(version: u64) {
    record(Stamp {
        manifest_version: Some(version),
        lease_epoch: None,
        ..Stamp::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_record_inside_the_scope_is_collected() {
        record(Stamp {
            manifest_version: Some(1),
            lease_epoch: None,
            ..Stamp::default()
        }); // outside any scope: dropped
        let ((), stamp) = collect(ReadVersions::WhenFree, async {
            record(Stamp {
                manifest_version: Some(3),
                lease_epoch: Some(2),
                ..Stamp::default()
            });
            tokio::task::yield_now().await;
            record(Stamp {
                manifest_version: Some(4),
                lease_epoch: Some(2),
                ..Stamp::default()
            });
        })
        .await;
        assert_eq!(stamp.manifest_version, Some(4));
        assert_eq!(stamp.lease_epoch, Some(2));
        let ((), none) = collect(ReadVersions::Confirm, async {
            assert!(confirm_asked());
        })
        .await;
        assert_eq!(none, Stamp::default());
        assert!(!confirm_asked());
    }
}
