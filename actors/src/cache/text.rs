//! The engine's `StorageAdapter` (its schema files, recovery sidecars and other text objects)
//! with the repo's mutable entries in front: while the repo is authoritative here, a read the
//! engine repeats on every query (the schema contract check) is answered from memory. A write
//! drops the entries it affects, like the Lance wrapper's.

use std::sync::Arc;

use async_trait::async_trait;
use omnigraph::error::Result;
use omnigraph::storage::StorageAdapter;

use super::repo::{Mutable, RepoCache};

#[derive(Debug)]
pub(crate) struct CachingStorage {
    inner: Arc<dyn StorageAdapter>,
    repo: Arc<RepoCache>,
}

impl CachingStorage {
    pub(crate) fn new(inner: Arc<dyn StorageAdapter>, repo: Arc<RepoCache>) -> CachingStorage {
        CachingStorage { inner, repo }
    }

    /// The entry under `key` if current, else `read` from the store (counted as `op`) and
    /// kept if nothing changed meanwhile.
    async fn cached<T>(
        &self,
        key: String,
        op: &'static str,
        unpack: impl Fn(Mutable) -> Option<T>,
        pack: impl Fn(&T) -> Mutable,
        read: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if let Some(value) = self.repo.lookup(&key).and_then(&unpack) {
            self.repo.node.metrics().hit("authority", 0);
            return Ok(value);
        }
        let authoritative = self.repo.authoritative();
        if authoritative {
            self.repo.node.metrics().miss("text");
        }
        let read_at = self.repo.epoch();
        self.count(op);
        let value = read.await?;
        self.repo.remember(key, read_at, pack(&value));
        Ok(value)
    }

    fn count(&self, op: &'static str) {
        self.repo.node.metrics().request(op, &self.repo.key);
    }
}

#[async_trait]
impl StorageAdapter for CachingStorage {
    async fn read_text(&self, uri: &str) -> Result<String> {
        let read = async { self.inner.read_text(uri).await.map(Arc::new) };
        let text = self
            .cached(
                format!("text:{uri}"),
                "get",
                |m| match m {
                    Mutable::Text(text) => Some(text),
                    _ => None,
                },
                |text| Mutable::Text(Arc::clone(text)),
                read,
            )
            .await?;
        Ok(text.as_ref().clone())
    }

    async fn write_text(&self, uri: &str, contents: &str) -> Result<()> {
        let _writing = self.repo.writing(uri.to_string());
        self.count("put");
        self.inner.write_text(uri, contents).await
    }

    async fn write_text_if_absent(&self, uri: &str, contents: &str) -> Result<bool> {
        let _writing = self.repo.writing(uri.to_string());
        self.count("put");
        self.inner.write_text_if_absent(uri, contents).await
    }

    async fn exists(&self, uri: &str) -> Result<bool> {
        self.cached(
            format!("exists:{uri}"),
            "head",
            |m| match m {
                Mutable::Exists(exists) => Some(exists),
                _ => None,
            },
            |exists| Mutable::Exists(*exists),
            self.inner.exists(uri),
        )
        .await
    }

    async fn rename_text(&self, from_uri: &str, to_uri: &str) -> Result<()> {
        let _writing = (
            self.repo.writing(from_uri.to_string()),
            self.repo.writing(to_uri.to_string()),
        );
        self.count("rename");
        self.inner.rename_text(from_uri, to_uri).await
    }

    async fn delete(&self, uri: &str) -> Result<()> {
        let _writing = self.repo.writing(uri.to_string());
        self.count("delete");
        self.inner.delete(uri).await
    }

    async fn list_dir(&self, dir_uri: &str) -> Result<Vec<String>> {
        let read = async { self.inner.list_dir(dir_uri).await.map(Arc::new) };
        let listing = self
            .cached(
                format!("dir:{dir_uri}"),
                "list",
                |m| match m {
                    Mutable::Dir(listing) => Some(listing),
                    _ => None,
                },
                |listing| Mutable::Dir(Arc::clone(listing)),
                read,
            )
            .await?;
        Ok(listing.as_ref().clone())
    }

    async fn read_text_versioned(&self, uri: &str) -> Result<(String, String)> {
        let read = async { self.inner.read_text_versioned(uri).await.map(Arc::new) };
        let versioned = self
            .cached(
                format!("versioned:{uri}"),
                "get",
                |m| match m {
                    Mutable::Versioned(versioned) => Some(versioned),
                    _ => None,
                },
                |versioned| Mutable::Versioned(Arc::clone(versioned)),
                read,
            )
            .await?;
        Ok(versioned.as_ref().clone())
    }

    async fn write_text_if_match(
        &self,
        uri: &str,
        contents: &str,
        expected_version: &str,
    ) -> Result<Option<String>> {
        let _writing = self.repo.writing(uri.to_string());
        self.count("put");
        self.inner
            .write_text_if_match(uri, contents, expected_version)
            .await
    }

    async fn delete_prefix(&self, prefix_uri: &str) -> Result<()> {
        // Everything under a prefix: nothing is served until it is gone.
        let _writing = self.repo.begin_write();
        self.count("delete");
        self.inner.delete_prefix(prefix_uri).await
    }
}
