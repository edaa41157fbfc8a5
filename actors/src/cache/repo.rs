//! One repo's namespace in the cache tier: its authority and its mutable entries.
//!
//! Mutable objects (listings, HEADs, text files) are served from memory only while the repo is
//! *authoritative* here: this process opened the engine while holding the repo's writer and
//! compaction leases and still holds both at the same epochs. Under those leases no other
//! process writes the repo, so the only changes are this process's own, and the cache sees
//! each of them:
//!
//! - a write that passes through the cache (the Lance wrapper, the engine's storage adapter)
//!   drops, before and after, the entries it may change: the object's own and every listing
//!   of a prefix that holds it ([`RepoCache::writing`]);
//! - a change that may write around the cache (the engine opens a few datasets without the
//!   wrapper) is bracketed as a whole ([`RepoCache::mutation`]): while it runs nothing is
//!   served or kept, and every entry is dropped before and after.
//!
//! Every write moves an epoch, and a read is kept only if the epoch has not moved since it was
//! sent, so an entry read while a write raced it is never kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use chrono::{DateTime, Utc};
use lance::io::WrappingObjectStore;
use object_store::ObjectMeta;
use omnigraph::instrumentation::{QueryIoProbes, with_query_io_probes};
use omnigraph_cloud_cluster::Clock;
use tokio::time::Instant;

pub(crate) use super::mutable::{Mutable, split_listing};
use super::{NodeCache, stale};
use crate::RepoKey;

/// Whether the leases the authority was granted under are still held (a local check).
pub(crate) type Authority = Arc<dyn Fn() -> bool + Send + Sync>;

/// Most recent copies a repo keeps for stale-ok reads.
const MAX_RECENT: usize = 512;

pub(crate) struct RepoCache {
    pub(crate) key: RepoKey,
    pub(crate) node: NodeCache,
    /// Stamps what this process writes in the listings it keeps.
    clock: Clock,
    /// Changes in flight whose writes the cache may not all see (see [`RepoCache::mutation`]).
    unseen_writes: AtomicUsize,
    authority: RwLock<Option<Authority>>,
    entries: Mutex<Entries>,
    /// One wrapper for the repo's life: Lance caches object stores by the wrapper's address.
    wrapper: Arc<dyn WrappingObjectStore>,
}

/// The mutable entries and what keeps them right: every write moves `epoch`, and a read is
/// kept only if the epoch has not moved since it was sent. One lock for all, so that a read
/// is never kept after a write it raced.
#[derive(Default)]
struct Entries {
    epoch: u64,
    /// Served as current, while the repo is authoritative here.
    map: HashMap<String, Mutable>,
    /// Elsewhere, the last copy read of each object and when its read was sent: served only
    /// to stale-ok reads (see [`stale`]), dropped at every write this process makes.
    recent: HashMap<String, (Mutable, Instant)>,
    /// The ETag last seen of each object, from listings and reads.
    etags: HashMap<String, String>,
}

impl RepoCache {
    /// `wrapper` makes the repo's Lance wrapper, which refers back to the repo.
    pub(crate) fn new(
        key: RepoKey,
        node: NodeCache,
        clock: Clock,
        wrapper: impl FnOnce(Weak<RepoCache>) -> Arc<dyn WrappingObjectStore>,
    ) -> Arc<RepoCache> {
        Arc::new_cyclic(|me| RepoCache {
            key,
            node,
            clock,
            unseen_writes: AtomicUsize::new(0),
            authority: RwLock::new(None),
            entries: Mutex::new(Entries::default()),
            wrapper: wrapper(me.clone()),
        })
    }

    /// The repo's Lance wrapper, for a store opened outside [`RepoCache::scope`].
    pub(crate) fn wrapper(&self) -> Arc<dyn WrappingObjectStore> {
        Arc::clone(&self.wrapper)
    }

    /// Runs `work` (engine calls) with the cache attached to every dataset it opens.
    ///
    /// `work` is boxed: the engine's futures are large, and the scope would otherwise move a
    /// copy of one more onto the stack of the task that polls it.
    pub(crate) async fn scope<F: Future>(&self, work: F) -> F::Output {
        let probes = QueryIoProbes {
            manifest_wrapper: Some(Arc::clone(&self.wrapper)),
            table_wrapper: Some(Arc::clone(&self.wrapper)),
            ..QueryIoProbes::default()
        };
        with_query_io_probes(probes, Box::pin(work)).await
    }

    /// Runs `work`, a change some of whose writes may bypass the cache (a branch operation,
    /// a schema change, a recovery sweep: the engine opens some datasets without the
    /// wrapper), in [`RepoCache::scope`]: no mutable entry is served or kept until it is over,
    /// and all are dropped before and after.
    ///
    /// A change whose writes all pass through the cache (an insert: a test checks it) needs
    /// only the scope: each write it makes drops the entries it affects.
    pub(crate) async fn mutation<F: Future>(&self, work: F) -> F::Output {
        let _writing = self.begin_write();
        self.scope(work).await
    }

    /// Grants (or, with `None`, withdraws) the authority to serve mutable entries.
    pub(crate) fn set_authority(&self, authority: Option<Authority>) {
        self.entries().forget_all();
        *self.authority.write().expect("authority lock") = authority;
    }

    pub(crate) fn authoritative(&self) -> bool {
        if self.unseen_writes.load(Ordering::SeqCst) > 0 || !self.node.enabled() {
            return false;
        }
        let authority = self.authority.read().expect("authority lock");
        authority.as_ref().is_some_and(|still_held| still_held())
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().expect("cache entries lock")
    }

    /// The wall time, as the store would stamp an object written now.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.clock.wall_ms() as i64).unwrap_or_default()
    }

    /// What to tag a read with; take it just before sending the request.
    pub(crate) fn epoch(&self) -> ReadAt {
        ReadAt {
            epoch: self.entries().epoch,
            sent: Instant::now(),
        }
    }

    /// The mutable entry under `key`: the current one if the repo is authoritative here, else
    /// for a stale-ok read a recent enough copy.
    pub(crate) fn lookup(&self, key: &str) -> Option<Mutable> {
        if self.authoritative() {
            return self.entries().map.get(key).cloned();
        }
        if !stale::active() {
            return None;
        }
        if let Some(pinned) = stale::pinned(key) {
            return Some(pinned);
        }
        let (copy, sent) = self.entries().recent.get(key).cloned()?;
        stale::serve(key, copy, sent)
    }

    /// Keeps `value`, read at `read_at`, if nothing was written since: as the current entry
    /// on the authority, else as the recent copy.
    pub(crate) fn remember(&self, key: String, read_at: ReadAt, value: Mutable) {
        stale::fetched(&key, &value, read_at.sent);
        let authoritative = self.authoritative();
        let mut entries = self.entries();
        if entries.epoch != read_at.epoch {
            return;
        }
        if authoritative {
            entries.map.insert(key, value);
        } else {
            if entries.recent.len() >= MAX_RECENT && !entries.recent.contains_key(&key) {
                // Listings from ever-new offsets would otherwise pile up on a node that only
                // reads: start over (a stale-ok read then asks the store once more).
                entries.recent.clear();
            }
            entries.recent.insert(key, (value, read_at.sent));
        }
    }

    /// Marks the start of a change the cache may not see all of; it ends when the guard drops.
    pub(crate) fn begin_write(&self) -> WriteGuard<'_> {
        self.unseen_writes.fetch_add(1, Ordering::SeqCst);
        self.entries().forget_all();
        WriteGuard { repo: self }
    }

    /// Marks a write of `path` (an object path, or a URI of the engine's text files) that
    /// passes through the cache. The object's own entries are dropped now; the listings that
    /// hold it stay right until the write lands (it is not visible before). When the guard
    /// drops, a write marked [`ObjectWrite::done`] is added to those listings, and any other
    /// drops them.
    pub(crate) fn writing(self: &Arc<Self>, path: String) -> ObjectWrite {
        self.entries().forget_object(&path);
        ObjectWrite {
            repo: Arc::clone(self),
            path,
            done: None,
        }
    }

    /// Drops what a write of `path` may change, at once (for a write without a guard's scope).
    pub(crate) fn forget(&self, path: &str) {
        self.entries().forget(path);
    }

    pub(crate) fn learn_etag(&self, meta: &ObjectMeta) {
        if let Some(etag) = &meta.e_tag {
            let path = meta.location.to_string();
            self.entries().etags.insert(path, etag.clone());
        }
    }

    /// The ETag of `path` as last seen, unless a change the cache may not see is in flight.
    pub(crate) fn etag(&self, path: &str) -> Option<String> {
        if self.unseen_writes.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.entries().etags.get(path).cloned()
    }
}

/// When a read of a mutable object was sent, and the epoch then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadAt {
    epoch: u64,
    sent: Instant,
}

impl Entries {
    /// Moves the epoch: a write is starting or landed. Recent copies are all dropped, so
    /// that a stale-ok read sees this process's own writes.
    fn next_epoch(&mut self) {
        self.epoch += 1;
        self.recent.clear();
    }

    fn forget_all(&mut self) {
        self.next_epoch();
        self.map.clear();
        self.etags.clear();
    }

    /// Drops what a write of `path` may change: the object's own entries and ETag, and every
    /// listing of a prefix that holds it.
    fn forget(&mut self, path: &str) {
        self.next_epoch();
        self.etags.remove(path);
        self.map.retain(|key, _| !affected_by(key, path));
    }

    /// Drops the object's own entries and ETag only.
    fn forget_object(&mut self, path: &str) {
        self.next_epoch();
        self.etags.remove(path);
        self.map.retain(|key, _| {
            key.split_once(':')
                .is_none_or(|(_, subject)| subject != path)
        });
    }

    /// A write of `meta.location` landed: it joins the flat listings that hold it (what Lance
    /// lists to find a dataset's latest version); other entries it affects are dropped.
    fn written(&mut self, meta: &ObjectMeta) {
        let path = meta.location.as_ref();
        self.next_epoch();
        match &meta.e_tag {
            Some(etag) => self.etags.insert(path.to_string(), etag.clone()),
            None => self.etags.remove(path),
        };
        self.map.retain(|key, value| {
            if !affected_by(key, path) {
                return true;
            }
            let (Some(("list", subject)), Mutable::List(listing)) = (key.split_once(':'), value)
            else {
                return false;
            };
            let after_offset = subject
                .split_once('>')
                .is_none_or(|(_, offset)| path > offset);
            if after_offset {
                let mut updated: Vec<ObjectMeta> = listing
                    .iter()
                    .filter(|listed| listed.location != meta.location)
                    .cloned()
                    .collect();
                updated.push(meta.clone());
                // S3 lists in key order, and Lance relies on it (the newest version is first).
                updated.sort_by(|a, b| a.location.cmp(&b.location));
                *listing = Arc::new(updated);
            }
            true
        });
    }
}

/// Whether the entry under `key` may change when `path` is written.
fn affected_by(key: &str, path: &str) -> bool {
    let Some((kind, subject)) = key.split_once(':') else {
        return true;
    };
    let under = |prefix: &str| {
        prefix.is_empty()
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/') || prefix.ends_with('/'))
    };
    match kind {
        "list" => under(
            subject
                .split_once('>')
                .map_or(subject, |(prefix, _)| prefix),
        ),
        "delimited" | "dir" => under(subject),
        _ => subject == path,
    }
}

/// A change in flight: mutable entries are neither served nor kept until it ends.
pub(crate) struct WriteGuard<'a> {
    repo: &'a RepoCache,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.repo.entries().forget_all();
        self.repo.unseen_writes.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One write in flight through the cache (owning its repo: a multipart upload or a stream of
/// deletions outlives a borrow).
#[derive(Debug)]
pub(crate) struct ObjectWrite {
    repo: Arc<RepoCache>,
    path: String,
    done: Option<ObjectMeta>,
}

impl ObjectWrite {
    /// The write landed, as `meta` describes the object now.
    pub(crate) fn done(&mut self, meta: ObjectMeta) {
        self.done = Some(meta);
    }
}

impl Drop for ObjectWrite {
    fn drop(&mut self) {
        let mut entries = self.repo.entries();
        match self.done.take() {
            Some(meta) => entries.written(&meta),
            None => entries.forget(&self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::affected_by;

    #[test]
    fn a_write_affects_its_object_and_the_listings_that_hold_it() {
        let path = "r/g.omni/nodes/0f/_versions/9.manifest";
        for key in [
            "head:r/g.omni/nodes/0f/_versions/9.manifest",
            "object:r/g.omni/nodes/0f/_versions/9.manifest",
            "list:r/g.omni/nodes/0f/_versions",
            "list:r/g.omni/nodes/0f/_versions>r/g.omni/nodes/0f/_versions/5.manifest",
            "list:r/g.omni",
            "list:",
            "delimited:r/g.omni/nodes/0f/_versions",
            "dir:r/g.omni/nodes/0f/_versions/",
        ] {
            assert!(affected_by(key, path), "{key}");
        }
        for key in [
            "head:r/g.omni/nodes/0f/_versions/8.manifest",
            "list:r/g.omni/nodes/0f/_versions_old",
            "list:r/g.omni/nodes/1e",
            "delimited:r/g.omni/edges",
            "text:r/g.omni/_schema.pg",
        ] {
            assert!(!affected_by(key, path), "{key}");
        }
    }
}
