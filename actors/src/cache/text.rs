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
    async fn cached<T: Kept>(
        &self,
        key: String,
        op: &'static str,
        read: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if let Some(value) = self.repo.lookup(&key).and_then(T::unpack) {
            self.repo.node.metrics().hit("authority", 0);
            return Ok(value);
        }
        if self.repo.authoritative() {
            self.repo.node.metrics().miss("text");
        }
        let read_at = self.repo.epoch();
        self.count(op);
        let value = read.await?;
        self.repo.remember(key, read_at, value.pack());
        Ok(value)
    }

    fn count(&self, op: &'static str) {
        self.repo.node.metrics().request(op, &self.repo.key);
    }
}

#[async_trait]
impl StorageAdapter for CachingStorage {
    async fn read_text(&self, uri: &str) -> Result<String> {
        let read = self.inner.read_text(uri);
        self.cached(format!("text:{uri}"), "get", read).await
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
        let read = self.inner.exists(uri);
        self.cached(format!("exists:{uri}"), "head", read).await
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
        let read = self.inner.list_dir(dir_uri);
        self.cached(format!("dir:{dir_uri}"), "list", read).await
    }

    async fn read_text_versioned(&self, uri: &str) -> Result<(String, String)> {
        let read = self.inner.read_text_versioned(uri);
        self.cached(format!("versioned:{uri}"), "get", read).await
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

/// A value of the adapter's reads, as kept among the repo's mutable entries.
trait Kept: Sized {
    fn pack(&self) -> Mutable;
    fn unpack(entry: Mutable) -> Option<Self>;
}

macro_rules! kept {
    ($type:ty, $variant:ident) => {
        impl Kept for $type {
            fn pack(&self) -> Mutable {
                Mutable::$variant(self.clone())
            }

            fn unpack(entry: Mutable) -> Option<Self> {
                match entry {
                    Mutable::$variant(value) => Some(value),
                    _ => None,
                }
            }
        }
    };
}

kept!(String, Text);
kept!(bool, Exists);
kept!(Vec<String>, Dir);
kept!((String, String), Versioned);
