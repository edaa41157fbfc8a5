//! The cache tier: object-storage reads of the engine served from memory and local disk.
//!
//! One node-wide [`NodeCache`] (foyer: memory, plus a directory on local NVMe when configured)
//! holds *immutable* objects by path and 64 KiB block: Lance data files, indices, deletion and
//! transaction files, and versioned manifests (those by ETag too, since a graph deleted and
//! created again reuses their names). Such an object never changes once written, so an entry
//! is right on every node, across restarts, for as long as it is kept.
//!
//! Everything else (listings, HEADs, the engine's schema text files, branch refs) can change.
//! A [`RepoCache`] keeps those in memory for one repo, and serves them only while this node is
//! the repo's *authority*: it holds the writer and compaction leases under which it opened
//! the engine, so every write to the repo passes through this process and invalidates them.
//! Elsewhere they are read from the store every time. See docs/cache.md for the argument.
//!
//! Files: this one builds the node's cache; [`blocks`] reads immutable objects block by block;
//! [`repo`] is a repo's namespace (epoch, authority, mutable entries); [`store`] is the Lance
//! `WrappingObjectStore` the engine's datasets read through; [`text`] is the engine's
//! `StorageAdapter` for its text files; [`stale`] serves stale-ok reads from the last copies
//! read; [`prefetch`] reads an open's text objects at once;
//! [`metrics`] counts what the cache does.

mod blocks;
mod metrics;
mod mutable;
pub(crate) mod prefetch;
mod repo;
pub mod stale;
mod store;
mod text;

use std::sync::Arc;

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    RecoverMode, Source,
};
use omnigraph_cloud_config::CacheConfig;
use tracing::{info, warn};

pub use metrics::{CacheMetrics, CacheStats};
pub(crate) use repo::{Authority, RepoCache};
pub(crate) use text::CachingStorage;

/// A repo's namespace in `node`, with the Lance wrapper that reads through it.
pub(crate) fn repo_cache(
    key: crate::RepoKey,
    node: NodeCache,
    clock: omnigraph_cloud_cluster::Clock,
) -> Arc<RepoCache> {
    RepoCache::new(key, node, clock, |repo| {
        Arc::new(store::CacheWrapper::new(repo))
    })
}

/// Size of a cached block of an immutable object: Lance's own I/O block on object stores.
pub(crate) const BLOCK_SIZE: u64 = 64 * 1024;

/// The node's cache of immutable object blocks. Cheap to clone.
#[derive(Clone)]
pub struct NodeCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCache")
            .field("enabled", &self.enabled())
            .finish()
    }
}

struct Inner {
    /// `None` when the cache is off: every read goes to the store.
    blocks: Option<HybridCache<String, Bytes>>,
    metrics: CacheMetrics,
}

#[derive(Debug, thiserror::Error)]
#[error("cache directory {dir}: {message}")]
pub struct CacheError {
    dir: String,
    message: String,
}

impl NodeCache {
    /// Builds the cache `config` describes. A disk tier that cannot be opened is an error; a
    /// disk tier whose contents are damaged is recovered quietly (bad entries are dropped).
    pub async fn build(
        config: &CacheConfig,
        metrics: CacheMetrics,
    ) -> Result<NodeCache, CacheError> {
        if !config.enabled {
            return Ok(NodeCache::off(metrics));
        }
        let memory = HybridCacheBuilder::new()
            .with_name("omnigraph-cache")
            .memory(config.memory_bytes)
            .with_weighter(|key: &String, value: &Bytes| key.len() + value.len());
        let blocks = match &config.dir {
            None => memory.storage().build().await,
            Some(dir) => {
                let fail = |message: String| CacheError {
                    dir: dir.display().to_string(),
                    message,
                };
                std::fs::create_dir_all(dir).map_err(|err| fail(err.to_string()))?;
                let device = FsDeviceBuilder::new(dir)
                    .with_capacity(config.disk_bytes)
                    .build()
                    .map_err(|err| fail(err.to_string()))?;
                info!(dir = %dir.display(), bytes = config.disk_bytes, "cache disk tier");
                memory
                    .storage()
                    .with_engine_config(BlockEngineConfig::new(device))
                    .with_recover_mode(RecoverMode::Quiet)
                    .build()
                    .await
            }
        };
        let blocks = blocks.map_err(|err| CacheError {
            dir: config
                .dir
                .as_ref()
                .map_or_else(|| "(memory)".into(), |d| d.display().to_string()),
            message: err.to_string(),
        })?;
        metrics.set_capacity(config.memory_bytes as u64);
        Ok(NodeCache {
            inner: Arc::new(Inner {
                blocks: Some(blocks),
                metrics,
            }),
        })
    }

    /// No cache: every read goes to the store (still counted).
    pub fn off(metrics: CacheMetrics) -> NodeCache {
        NodeCache {
            inner: Arc::new(Inner {
                blocks: None,
                metrics,
            }),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.inner.blocks.is_some()
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.inner.metrics
    }

    /// The block stored under `key`, from memory or disk. A disk error is a miss.
    pub(crate) async fn get(&self, key: &str) -> Option<Bytes> {
        let blocks = self.inner.blocks.as_ref()?;
        match blocks.get(key).await {
            Ok(Some(entry)) => {
                let tier = match entry.source() {
                    Source::Disk => "disk",
                    _ => "memory",
                };
                let value = entry.value().clone();
                self.inner.metrics.hit(tier, value.len() as u64);
                Some(value)
            }
            Ok(None) => None,
            Err(err) => {
                warn!(error = %err, "cache read failed; reading the store instead");
                self.inner.metrics.error();
                None
            }
        }
    }

    pub(crate) fn insert(&self, key: String, value: Bytes) {
        if let Some(blocks) = &self.inner.blocks {
            blocks.insert(key, value);
            self.inner.metrics.held(blocks.memory().usage() as u64);
        }
    }

    /// Flushes the disk tier (at shutdown), so that a restart finds what was cached.
    pub async fn close(&self) {
        if let Some(blocks) = &self.inner.blocks
            && let Err(err) = blocks.close().await
        {
            warn!(error = %err, "closing the cache failed");
        }
    }
}
