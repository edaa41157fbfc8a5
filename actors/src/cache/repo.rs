//! One repo's namespace in the cache tier: its epoch, its authority and its mutable entries.
//!
//! Mutable objects (listings, HEADs, text files) are served from memory only while the repo is
//! *authoritative* here: this process opened the engine while holding the repo's writer and
//! compaction leases, still holds both at the same epochs, and no write of its own is in
//! flight. Under those leases no other process writes the repo, so the only changes are this
//! process's own, and each of them is bracketed by [`RepoCache::begin_write`]: the epoch moves
//! before and after, which drops every entry. An entry read before or during a write is never
//! kept, because it is tagged with the epoch it was read at and kept only if that is still
//! the epoch.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};

use bytes::Bytes;
use dashmap::DashMap;
use lance::io::WrappingObjectStore;
use object_store::{ListResult, ObjectMeta};
use omnigraph::instrumentation::{QueryIoProbes, with_query_io_probes};

use super::NodeCache;
use crate::RepoKey;

/// Whether the leases the authority was granted under are still held (a local check).
pub(crate) type Authority = Arc<dyn Fn() -> bool + Send + Sync>;

/// A cached answer about an object that can change.
#[derive(Clone)]
pub(crate) enum Mutable {
    List(Arc<Vec<ObjectMeta>>),
    Delimited(Arc<(Vec<object_store::path::Path>, Vec<ObjectMeta>)>),
    /// `None`: the object does not exist.
    Head(Option<ObjectMeta>),
    Object(Bytes, ObjectMeta),
    Text(Arc<String>),
    Versioned(Arc<(String, String)>),
    Exists(bool),
    Dir(Arc<Vec<String>>),
}

pub(crate) struct RepoCache {
    pub(crate) key: RepoKey,
    pub(crate) node: NodeCache,
    epoch: AtomicU64,
    writing: AtomicUsize,
    authority: RwLock<Option<Authority>>,
    entries: DashMap<String, (u64, Mutable)>,
    /// The ETag last seen of each object, from listings and reads, with the epoch it was
    /// seen at: a change (which may delete and re-create a path) forgets them all.
    etags: DashMap<String, (String, u64)>,
    /// One wrapper for the repo's life: Lance caches object stores by the wrapper's address.
    wrapper: Arc<dyn WrappingObjectStore>,
}

impl RepoCache {
    /// `wrapper` makes the repo's Lance wrapper, which refers back to the repo.
    pub(crate) fn new(
        key: RepoKey,
        node: NodeCache,
        wrapper: impl FnOnce(Weak<RepoCache>) -> Arc<dyn WrappingObjectStore>,
    ) -> Arc<RepoCache> {
        Arc::new_cyclic(|me| RepoCache {
            key,
            node,
            epoch: AtomicU64::new(0),
            writing: AtomicUsize::new(0),
            authority: RwLock::new(None),
            entries: DashMap::new(),
            etags: DashMap::new(),
            wrapper: wrapper(me.clone()),
        })
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

    /// Runs `work`, a change to the repo, in [`RepoCache::scope`] and between two epochs.
    pub(crate) async fn mutation<F: Future>(&self, work: F) -> F::Output {
        let _writing = self.begin_write();
        self.scope(work).await
    }

    /// Grants (or, with `None`, withdraws) the authority to serve mutable entries.
    pub(crate) fn set_authority(&self, authority: Option<Authority>) {
        self.invalidate();
        *self.authority.write().expect("authority lock") = authority;
    }

    pub(crate) fn authoritative(&self) -> bool {
        if self.writing.load(Ordering::SeqCst) > 0 || !self.node.enabled() {
            return false;
        }
        let authority = self.authority.read().expect("authority lock");
        authority.as_ref().is_some_and(|still_held| still_held())
    }

    /// The epoch to tag a read with; take it before sending the request.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The mutable entry under `key`, if the repo is authoritative and it is current.
    pub(crate) fn lookup(&self, key: &str) -> Option<Mutable> {
        if !self.authoritative() {
            return None;
        }
        let epoch = self.epoch();
        let entry = self.entries.get(key)?;
        (entry.0 == epoch).then(|| entry.1.clone())
    }

    /// Keeps `value`, read at epoch `read_at`, if nothing changed since.
    pub(crate) fn remember(&self, key: String, read_at: u64, value: Mutable) {
        if self.authoritative() && self.epoch() == read_at {
            self.entries.insert(key, (read_at, value));
        }
    }

    /// Marks the start of a change; the change ends when the guard drops.
    pub(crate) fn begin_write(&self) -> WriteGuard<'_> {
        self.writing.fetch_add(1, Ordering::SeqCst);
        self.invalidate();
        WriteGuard { repo: self }
    }

    fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    pub(crate) fn learn_etag(&self, meta: &ObjectMeta) {
        if let Some(etag) = &meta.e_tag {
            let seen = (etag.clone(), self.epoch());
            self.etags.insert(meta.location.to_string(), seen);
        }
    }

    /// The ETag of `path` as last seen, if seen since the last change began or ended and no
    /// change is in flight.
    pub(crate) fn etag(&self, path: &str) -> Option<String> {
        if self.writing.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let seen = self.etags.get(path)?;
        (seen.1 == self.epoch()).then(|| seen.0.clone())
    }
}

/// A change in flight: mutable entries are neither served nor kept until it ends.
pub(crate) struct WriteGuard<'a> {
    repo: &'a RepoCache,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.repo.invalidate();
        self.repo.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The same guard, owning its repo: for a change that outlives a borrow (a multipart upload,
/// a stream of deletions).
#[derive(Debug)]
pub(crate) struct OwnedWriteGuard {
    repo: Arc<RepoCache>,
}

impl OwnedWriteGuard {
    pub(crate) fn new(repo: Arc<RepoCache>) -> OwnedWriteGuard {
        std::mem::forget(repo.begin_write());
        OwnedWriteGuard { repo }
    }
}

impl Drop for OwnedWriteGuard {
    fn drop(&mut self) {
        drop(WriteGuard { repo: &self.repo });
    }
}

/// `ListResult` is not `Clone`; the delimited listing is kept as its parts.
pub(crate) fn split_listing(listing: &ListResult) -> Mutable {
    Mutable::Delimited(Arc::new((
        listing.common_prefixes.clone(),
        listing.objects.clone(),
    )))
}
