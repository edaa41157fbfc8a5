//! The object store the engine's datasets read through: Lance attaches it to every dataset
//! opened inside [`RepoCache::scope`](super::RepoCache::scope), and the dataset keeps it.
//!
//! Reads of immutable objects go through the node's block cache ([`super::blocks`]); listings,
//! HEADs and small whole-object reads of mutable objects come from the repo's mutable entries
//! while the repo is authoritative here. Every write drops the entries it affects (and a PUT
//! that lands joins the listings that hold it, and keeps an immutable object as written); see
//! [`super::repo`]. Every request sent on to the store is counted.

use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use lance::io::WrappingObjectStore;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

use super::blocks::{self, Class};
use super::repo::{Mutable, ObjectWrite, RepoCache, split_listing};

/// Hands Lance a [`CachingStore`] around each store it opens for the repo.
#[derive(Debug)]
pub(crate) struct CacheWrapper {
    repo: Weak<RepoCache>,
}

impl CacheWrapper {
    pub(crate) fn new(repo: Weak<RepoCache>) -> CacheWrapper {
        CacheWrapper { repo }
    }
}

impl fmt::Debug for RepoCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoCache")
            .field("repo", &self.key)
            .finish()
    }
}

impl WrappingObjectStore for CacheWrapper {
    fn wrap(&self, _store_prefix: &str, original: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        match self.repo.upgrade() {
            Some(repo) => Arc::new(CachingStore {
                inner: original,
                repo,
            }),
            None => original,
        }
    }
}

#[derive(Debug)]
pub(crate) struct CachingStore {
    inner: Arc<dyn ObjectStore>,
    repo: Arc<RepoCache>,
}

impl fmt::Display for CachingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cached({})", self.inner)
    }
}

impl CachingStore {
    fn count(&self, op: &'static str, location: &dyn fmt::Display) {
        tracing::trace!(repo = %self.repo.key, op, %location, "engine store request");
        self.repo.node.metrics().request(op, &self.repo.key);
    }

    fn writing(&self, location: &Path) -> ObjectWrite {
        self.repo.writing(location.to_string())
    }

    /// A HEAD, or a whole read, of a mutable object: from the repo's entries when
    /// authoritative.
    async fn get_mutable(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let whole = options.range.is_none() && blocks::cacheable(&options);
        let key = if options.head {
            format!("head:{location}")
        } else {
            format!("object:{location}")
        };
        if whole {
            match self.repo.lookup(&key) {
                Some(Mutable::Head(Some(meta))) => {
                    self.repo.node.metrics().hit("authority", 0);
                    return Ok(blocks::result(meta, 0..0, bytes::Bytes::new()));
                }
                Some(Mutable::Head(None)) => {
                    self.repo.node.metrics().hit("authority", 0);
                    return Err(object_store::Error::NotFound {
                        path: location.to_string(),
                        source: "not found (cached by the writer-lease holder)".into(),
                    });
                }
                Some(Mutable::Object(bytes, meta)) => {
                    self.repo
                        .node
                        .metrics()
                        .hit("authority", bytes.len() as u64);
                    let size = meta.size;
                    return Ok(blocks::result(meta, 0..size, bytes));
                }
                _ => {}
            }
        }
        let authoritative = whole && self.repo.authoritative();
        let read_at = self.repo.epoch();
        let head = options.head;
        self.count(if head { "head" } else { "get" }, location);
        if authoritative {
            self.repo
                .node
                .metrics()
                .miss(if head { "head" } else { "object" });
        }
        let got = match self.inner.get_opts(location, options).await {
            Err(object_store::Error::NotFound { path, source }) => {
                if authoritative && head {
                    self.repo.remember(key, read_at, Mutable::Head(None));
                }
                return Err(object_store::Error::NotFound { path, source });
            }
            other => other?,
        };
        self.repo.learn_etag(&got.meta);
        if !authoritative {
            return Ok(got);
        }
        let meta = got.meta.clone();
        if head {
            self.repo
                .remember(key, read_at, Mutable::Head(Some(meta.clone())));
            return Ok(got);
        }
        let range = got.range.clone();
        let bytes = got.bytes().await?;
        self.repo
            .node
            .metrics()
            .read(&self.repo.key, bytes.len() as u64);
        self.repo
            .remember(key, read_at, Mutable::Object(bytes.clone(), meta.clone()));
        Ok(blocks::result(meta, range, bytes))
    }

    /// A listing: from the repo's entries when authoritative (or a recent copy for a stale-ok
    /// read), else from the store, kept whole either way.
    fn list_cached(
        &self,
        key: String,
        list: impl FnOnce() -> BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Some(Mutable::List(entries)) = self.repo.lookup(&key) {
            self.repo.node.metrics().hit("authority", 0);
            return futures::stream::iter(entries.as_ref().clone().into_iter().map(Ok)).boxed();
        }
        self.count("list", &key);
        let listing = list();
        let repo = Arc::clone(&self.repo);
        if repo.authoritative() {
            repo.node.metrics().miss("listing");
        }
        let read_at = repo.epoch();
        futures::stream::once(async move {
            let entries: Vec<ObjectMeta> = listing.try_collect().await?;
            for meta in &entries {
                repo.learn_etag(meta);
            }
            repo.remember(key, read_at, Mutable::List(Arc::new(entries.clone())));
            Ok::<_, object_store::Error>(futures::stream::iter(entries.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }
}

#[async_trait]
impl ObjectStore for CachingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let mut writing = self.writing(location);
        let class = blocks::classify(location);
        // An immutable object is cached as it is written: a commit reads back what it wrote.
        let written = (class != Class::Mutable && self.repo.node.enabled())
            .then(|| bytes::Bytes::from(payload.clone()));
        let size = payload.content_length() as u64;
        self.count("put", location);
        self.repo.node.metrics().written(&self.repo.key, size);
        let result = self.inner.put_opts(location, payload, opts).await?;
        let meta = ObjectMeta {
            location: location.clone(),
            last_modified: self.repo.now(),
            size,
            e_tag: result.e_tag.clone(),
            version: result.version.clone(),
        };
        if let Some(bytes) = written {
            blocks::write_through(&self.repo, class, &meta, bytes);
        }
        writing.done(meta);
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let writing = self.writing(location);
        self.count("put_multipart", location);
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(GuardedUpload {
            upload,
            _writing: writing,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let class = blocks::classify(location);
        if class == Class::Mutable {
            return self.get_mutable(location, options).await;
        }
        if self.repo.node.enabled()
            && blocks::cacheable(&options)
            && let Some(prefix) = blocks::key_prefix(&self.repo, location, class)
            && let Some(answer) =
                blocks::read(&self.repo, self.inner.as_ref(), location, &prefix, &options).await
        {
            return answer;
        }
        let head = options.head;
        self.count(if head { "head" } else { "get" }, location);
        let got = self.inner.get_opts(location, options).await?;
        self.repo.learn_etag(&got.meta);
        if head && let Some(prefix) = blocks::key_prefix(&self.repo, location, class) {
            blocks::remember_meta(&self.repo, &prefix, &got.meta);
        }
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        // Each path is forgotten before its deletion is sent and again once it is done.
        let before = Arc::clone(&self.repo);
        let locations = locations
            .inspect_ok(move |path| before.forget(path.as_ref()))
            .boxed();
        let repo = Arc::clone(&self.repo);
        self.inner
            .delete_stream(locations)
            .map(move |deleted| {
                repo.node.metrics().request("delete", &repo.key);
                if let Ok(path) = &deleted {
                    repo.forget(path.as_ref());
                }
                deleted
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let key = format!("list:{}", prefix.map(Path::as_ref).unwrap_or_default());
        self.list_cached(key, || self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let key = format!(
            "list:{}>{offset}",
            prefix.map(Path::as_ref).unwrap_or_default()
        );
        self.list_cached(key, || self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let key = format!("delimited:{}", prefix.map(Path::as_ref).unwrap_or_default());
        if let Some(Mutable::Delimited(parts)) = self.repo.lookup(&key) {
            self.repo.node.metrics().hit("authority", 0);
            let (common_prefixes, objects) = parts.as_ref().clone();
            return Ok(ListResult {
                common_prefixes,
                objects,
            });
        }
        let authoritative = self.repo.authoritative();
        if authoritative {
            self.repo.node.metrics().miss("listing");
        }
        let read_at = self.repo.epoch();
        self.count("list", &key);
        let listing = self.inner.list_with_delimiter(prefix).await?;
        for meta in &listing.objects {
            self.repo.learn_etag(meta);
        }
        self.repo.remember(key, read_at, split_listing(&listing));
        Ok(listing)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let _writing = self.writing(to);
        self.count("copy", from);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let _writing = (self.writing(from), self.writing(to));
        self.count("rename", from);
        self.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload: what it affects is dropped again once it is over.
#[derive(Debug)]
struct GuardedUpload {
    upload: Box<dyn MultipartUpload>,
    _writing: ObjectWrite,
}

#[async_trait]
impl MultipartUpload for GuardedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.upload.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.upload.abort().await
    }
}
