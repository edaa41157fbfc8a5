//! Where graphs live under the storage root, and the few object-store operations we issue
//! ourselves (existence, listing, deletion). Everything inside a graph belongs to the engine.
//!
//! Layout: `{root}/tenants/{tenant}/graphs/{graph_id}.omni/`. A graph exists when its
//! `_schema.pg` exists: the engine claims that object first (create-if-absent) on init, and
//! [`GraphStore::delete_graph`] removes it first, so a half-deleted graph is already gone.

use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use omnigraph_cloud_cluster::lease::{LeaseStore, LeaseTiming, LocalBackend, ObjectStoreBackend};
use omnigraph_cloud_cluster::{StoreOp, list_under, listing_version};
use omnigraph_cloud_config::{GraphId, StorageRoot, TenantId};

use crate::cache::{CacheMetrics, NodeCache};
use crate::metrics::StoreMetrics;
use crate::probe::{self, ProbeError, ProbeReport};
use crate::{RepoError, RepoKey};

const SCHEMA_OBJECT: &str = "_schema.pg";
const GRAPH_SUFFIX: &str = ".omni";

/// The storage root of a node, resolved into an object store.
#[derive(Debug, Clone)]
pub struct GraphStore {
    inner: Arc<Inner>,
    cache: NodeCache,
}

#[derive(Debug)]
struct Inner {
    location: Location,
    store: Arc<dyn ObjectStore>,
    metrics: StoreMetrics,
    /// Keeps a `memory://` root's private directory alive as long as the store.
    _ephemeral: Option<tempfile::TempDir>,
}

#[derive(Debug)]
enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl GraphStore {
    /// Opens the root: creates a local root directory, or configures S3 from the standard
    /// `AWS_*` variables (`AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` for S3-compatible stores).
    ///
    /// `memory://` is backed by a private temporary directory removed when the store is
    /// dropped: the engine opens graphs by URI and has no in-memory URI of its own.
    pub fn open(root: &StorageRoot, metrics: StoreMetrics) -> Result<GraphStore, RepoError> {
        let (location, store, ephemeral): (Location, Arc<dyn ObjectStore>, _) = match root {
            StorageRoot::File(path) => {
                std::fs::create_dir_all(path)?;
                let store = LocalFileSystem::new_with_prefix(path)?;
                (Location::Local(path.clone()), Arc::new(store), None)
            }
            StorageRoot::Memory => {
                let dir = tempfile::Builder::new()
                    .prefix("omnigraph-memory-")
                    .tempdir()?;
                let path = dir.path().to_path_buf();
                let store = LocalFileSystem::new_with_prefix(&path)?;
                (Location::Local(path), Arc::new(store), Some(dir))
            }
            StorageRoot::S3 { bucket, prefix } => {
                let store = s3_store_from_env(bucket)?;
                let location = Location::S3 {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                };
                (location, Arc::new(store), None)
            }
        };
        Ok(GraphStore {
            inner: Arc::new(Inner {
                location,
                store,
                metrics,
                _ephemeral: ephemeral,
            }),
            cache: NodeCache::off(CacheMetrics::unregistered()),
        })
    }

    /// The same root, read through `cache` (by default there is none).
    pub fn with_cache(mut self, cache: NodeCache) -> GraphStore {
        self.cache = cache;
        self
    }

    pub fn cache(&self) -> &NodeCache {
        &self.cache
    }

    /// The URI the engine opens for `key`.
    pub fn graph_uri(&self, key: &RepoKey) -> String {
        let relative = graph_relative_path(&key.tenant, &key.graph);
        match &self.inner.location {
            Location::Local(root) => root.join(relative).to_string_lossy().into_owned(),
            Location::S3 { bucket, prefix } if prefix.is_empty() => {
                format!("s3://{bucket}/{relative}")
            }
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{relative}"),
        }
    }

    /// Prepares the place where a new graph will be initialised (local roots need the
    /// directory to exist before `Omnigraph::init`).
    pub(crate) async fn prepare_graph_location(&self, key: &RepoKey) -> Result<(), RepoError> {
        if let Location::Local(_) = self.inner.location {
            tokio::fs::create_dir_all(self.graph_uri(key)).await?;
        }
        Ok(())
    }

    /// Checks that the store enforces conditional writes (see [`crate::probe`]).
    pub async fn probe_conditional_writes(&self) -> Result<ProbeReport, ProbeError> {
        let supports_update = matches!(self.inner.location, Location::S3 { .. });
        let store = probe::Counted {
            store: self.inner.store.as_ref(),
            metrics: &self.inner.metrics,
        };
        probe::run(&store, &self.object_path(""), supports_update).await
    }

    /// The leases of every repo under this root (see [`omnigraph_cloud_cluster::lease`]).
    pub fn leases(&self, timing: LeaseTiming) -> LeaseStore {
        let backend: Arc<dyn omnigraph_cloud_cluster::lease::LeaseBackend> =
            match &self.inner.location {
                Location::Local(root) => Arc::new(LocalBackend::new(root.clone())),
                Location::S3 { .. } => Arc::new(ObjectStoreBackend::new(
                    Arc::clone(&self.inner.store),
                    self.object_path(""),
                )),
            };
        LeaseStore::new(backend, Arc::new(self.inner.metrics.clone()), timing)
    }

    /// Whether the graph exists (its schema object is present).
    pub async fn graph_exists(&self, key: &RepoKey) -> Result<bool, RepoError> {
        let path = self.object_path(&format!(
            "{}/{SCHEMA_OBJECT}",
            graph_relative_path(&key.tenant, &key.graph)
        ));
        let exists = match self.inner.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        };
        // Counted under the graph only when it exists: probing ids must not grow the series.
        match exists {
            Ok(true) => self.inner.metrics.record(StoreOp::Head, Some(key)),
            _ => self.inner.metrics.record_tenant(StoreOp::Head, &key.tenant),
        }
        exists
    }

    /// The tenant's graphs, sorted by id.
    pub async fn list_graphs(&self, tenant: &TenantId) -> Result<Vec<GraphId>, RepoError> {
        let prefix = self.object_path(&format!("tenants/{tenant}/graphs"));
        self.inner.metrics.record_tenant(StoreOp::List, tenant);
        let listing = match self.inner.store.list_with_delimiter(Some(&prefix)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let candidates: Vec<GraphId> = listing
            .common_prefixes
            .iter()
            .filter_map(|dir| {
                dir.filename()?
                    .strip_suffix(GRAPH_SUFFIX)
                    .map(str::to_string)
            })
            .filter_map(|name| GraphId::new(&name).ok())
            .collect();
        // A directory without a schema object is crash residue of a create or delete.
        let mut graphs: Vec<GraphId> = futures::stream::iter(candidates)
            .map(|graph| async move {
                let key = RepoKey::new(tenant.clone(), graph.clone());
                self.graph_exists(&key)
                    .await
                    .map(|exists| exists.then_some(graph))
            })
            .buffer_unordered(8)
            .try_filter_map(|graph| async move { Ok(graph) })
            .try_collect()
            .await?;
        graphs.sort();
        Ok(graphs)
    }

    /// Removes every object of a graph. The schema object goes first, so that a crash
    /// part-way leaves residue that no longer counts as a graph.
    pub async fn delete_graph(&self, key: &RepoKey) -> Result<(), RepoError> {
        let relative = graph_relative_path(&key.tenant, &key.graph);
        let schema = self.object_path(&format!("{relative}/{SCHEMA_OBJECT}"));
        self.inner
            .metrics
            .record_tenant(StoreOp::Delete, &key.tenant);
        match self.inner.store.delete(&schema).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        match &self.inner.location {
            Location::Local(_) => match tokio::fs::remove_dir_all(self.graph_uri(key)).await {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(err.into()),
            },
            Location::S3 { .. } => {
                let prefix = self.object_path(&relative);
                self.inner.metrics.record_tenant(StoreOp::List, &key.tenant);
                self.inner
                    .metrics
                    .record_tenant(StoreOp::Delete, &key.tenant);
                let locations = self
                    .inner
                    .store
                    .list(Some(&prefix))
                    .map_ok(|meta| meta.location)
                    .boxed();
                self.inner
                    .store
                    .delete_stream(locations)
                    .try_collect::<Vec<_>>()
                    .await?;
                Ok(())
            }
        }
    }

    /// How many recovery sidecars (`__recovery/*.json`) the graph has: one listing.
    pub(crate) async fn recovery_sidecars(&self, key: &RepoKey) -> Result<usize, RepoError> {
        let prefix = self.object_path(&format!(
            "{}/__recovery",
            graph_relative_path(&key.tenant, &key.graph)
        ));
        self.inner.metrics.record(StoreOp::List, Some(key));
        let listed = list_under(self.inner.store.as_ref(), &prefix).await?;
        Ok(listed
            .iter()
            .filter(|(path, _)| path.ends_with(".json"))
            .count())
    }

    /// Every object of the graph, as (path relative to the graph, size).
    pub(crate) async fn graph_files(&self, key: &RepoKey) -> Result<Vec<(String, u64)>, RepoError> {
        let prefix = self.object_path(&graph_relative_path(&key.tenant, &key.graph));
        self.inner.metrics.record(StoreOp::List, Some(key));
        let listed = list_under(self.inner.store.as_ref(), &prefix).await?;
        Ok(listed
            .into_iter()
            .map(|(path, meta)| (path, meta.size))
            .collect())
    }

    /// Records a repo's maintenance progress under `_system/maintenance/` (soft state).
    pub(crate) async fn put_maintenance_status(
        &self,
        key: &RepoKey,
        progress: &impl serde::Serialize,
    ) -> Result<(), RepoError> {
        let bytes = serde_json::to_vec_pretty(progress).expect("progress serializes");
        self.put_system_object(&maintenance_status_path(key), bytes, Some(key))
            .await
    }

    pub(crate) async fn get_maintenance_status<T: serde::de::DeserializeOwned>(
        &self,
        key: &RepoKey,
    ) -> Result<Option<T>, RepoError> {
        let bytes = self
            .get_system_object(&maintenance_status_path(key), Some(key))
            .await?;
        // Soft state: an unreadable status is as good as none.
        Ok(bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Every maintenance status object, with a version that changes on each write.
    pub(crate) async fn list_maintenance_status(
        &self,
    ) -> Result<Vec<(RepoKey, String)>, RepoError> {
        let prefix = self.object_path(MAINTENANCE_DIR);
        self.inner.metrics.record(StoreOp::List, None);
        let listed = list_under(self.inner.store.as_ref(), &prefix).await?;
        Ok(listed
            .into_iter()
            .filter_map(|(path, meta)| {
                let (tenant, file) = path.split_once('/')?;
                let graph = file.strip_suffix(".json")?;
                let key = RepoKey::new(TenantId::new(tenant).ok()?, GraphId::new(graph).ok()?);
                Some((key, listing_version(&meta)))
            })
            .collect())
    }

    /// Writes soft state under `_system/` (`relative` starts there), counted under `key`'s
    /// graph when it is about one.
    pub async fn put_system_object(
        &self,
        relative: &str,
        bytes: Vec<u8>,
        key: Option<&RepoKey>,
    ) -> Result<(), RepoError> {
        self.inner.metrics.record(StoreOp::Put, key);
        self.inner
            .store
            .put(&self.object_path(relative), bytes.into())
            .await?;
        Ok(())
    }

    /// Writes soft state that is never rewritten (a usage record), if absent: `false` when
    /// the object exists already.
    pub(crate) async fn create_system_object(
        &self,
        relative: &str,
        bytes: Vec<u8>,
    ) -> Result<bool, RepoError> {
        self.inner.metrics.record(StoreOp::Put, None);
        let create = object_store::PutOptions::from(object_store::PutMode::Create);
        let path = self.object_path(relative);
        match self.inner.store.put_opts(&path, bytes.into(), create).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// The objects under the folder `relative`, as paths relative to the root, sorted.
    pub(crate) async fn list_system_objects(
        &self,
        relative: &str,
    ) -> Result<Vec<String>, RepoError> {
        self.inner.metrics.record(StoreOp::List, None);
        let listed = list_under(self.inner.store.as_ref(), &self.object_path(relative)).await?;
        let mut paths: Vec<String> = listed
            .into_iter()
            .map(|(path, _)| format!("{relative}/{path}"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// The names of the folders directly under `relative` (one delimited listing).
    pub async fn list_folders(&self, relative: &str) -> Result<Vec<String>, RepoError> {
        self.inner.metrics.record(StoreOp::List, None);
        let prefix = self.object_path(relative);
        let listing = match self.inner.store.list_with_delimiter(Some(&prefix)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|dir| dir.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Reads soft state written by [`GraphStore::put_system_object`]; `None` if absent.
    pub async fn get_system_object(
        &self,
        relative: &str,
        key: Option<&RepoKey>,
    ) -> Result<Option<bytes::Bytes>, RepoError> {
        self.inner.metrics.record(StoreOp::Get, key);
        match self.inner.store.get(&self.object_path(relative)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    fn object_path(&self, relative: &str) -> ObjectPath {
        match &self.inner.location {
            Location::S3 { prefix, .. } if !prefix.is_empty() => {
                ObjectPath::from(format!("{prefix}/{relative}"))
            }
            _ => ObjectPath::from(relative),
        }
    }
}

const MAINTENANCE_DIR: &str = "_system/maintenance";

fn maintenance_status_path(key: &RepoKey) -> String {
    format!("{MAINTENANCE_DIR}/{}/{}.json", key.tenant, key.graph)
}

fn graph_relative_path(tenant: &TenantId, graph: &GraphId) -> String {
    format!("tenants/{tenant}/graphs/{graph}{GRAPH_SUFFIX}")
}

/// Builds an S3 client the way the engine does, so that both see the same store.
fn s3_store_from_env(bucket: &str) -> Result<object_store::aws::AmazonS3, RepoError> {
    // As Lance's defaults: a few retries, so that an unreachable store fails fast (503)
    // rather than holding requests for minutes.
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(30),
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry);
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|value| !value.trim().is_empty());
    if let Some(endpoint) = endpoint {
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
        builder = builder.with_endpoint(endpoint);
    }
    if env_truthy("AWS_ALLOW_HTTP") {
        builder = builder.with_allow_http(true);
    }
    if env_truthy("AWS_S3_FORCE_PATH_STYLE") {
        builder = builder.with_virtual_hosted_style_request(false);
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    Ok(builder.build()?)
}

fn env_truthy(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1" | "true" | "TRUE" | "True" | "yes" | "YES" | "on" | "ON")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str, graph: &str) -> RepoKey {
        RepoKey::new(TenantId::new(tenant).unwrap(), GraphId::new(graph).unwrap())
    }

    #[test]
    fn graph_uris_follow_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = GraphStore::open(
            &StorageRoot::File(dir.path().into()),
            StoreMetrics::unregistered(),
        )
        .unwrap();
        assert_eq!(
            store.graph_uri(&key("acme", "g1")),
            dir.path()
                .join("tenants/acme/graphs/g1.omni")
                .to_string_lossy()
        );
    }

    #[tokio::test]
    async fn lists_only_graphs_with_a_schema_and_deletes_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = GraphStore::open(
            &StorageRoot::File(dir.path().into()),
            StoreMetrics::unregistered(),
        )
        .unwrap();
        for graph in ["b", "a"] {
            let path = dir.path().join(format!("tenants/t/graphs/{graph}.omni"));
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join(SCHEMA_OBJECT), "node X { name: String @key }").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("tenants/t/graphs/residue.omni")).unwrap();
        let listed = store
            .list_graphs(&TenantId::new("t").unwrap())
            .await
            .unwrap();
        assert_eq!(
            listed,
            vec![GraphId::new("a").unwrap(), GraphId::new("b").unwrap()]
        );
        assert!(
            store
                .list_graphs(&TenantId::new("other").unwrap())
                .await
                .unwrap()
                .is_empty()
        );

        store.delete_graph(&key("t", "a")).await.unwrap();
        assert!(!store.graph_exists(&key("t", "a")).await.unwrap());
        assert!(!dir.path().join("tenants/t/graphs/a.omni").exists());
        store.delete_graph(&key("t", "a")).await.unwrap();
    }
}
