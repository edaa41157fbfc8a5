//! Where graphs live under the storage root, and the few object-store operations we issue
//! ourselves (existence, listing, deletion). Everything inside a graph belongs to the engine.
//!
//! Layout: `{root}/tenants/{tenant}/graphs/{graph_id}.omni/`. A graph exists when its
//! `_schema.pg` exists: the engine claims that object first (create-if-absent) on init, and
//! [`GraphStore::delete_graph`] removes it first, so a half-deleted graph is already gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use omnigraph_cloud_cluster::lease::{LeaseStore, LeaseTiming};
use omnigraph_cloud_cluster::{StoreOp, list_under, listing_version};
use omnigraph_cloud_config::{GraphId, StorageRoot, TenantId};

use crate::cache::{CacheMetrics, NodeCache};
use crate::metrics::StoreMetrics;
use crate::probe::{self, ProbeError, ProbeReport};
use crate::{RepoError, RepoKey};

mod cas;
mod roots;
mod s3;

use roots::{Location, Root, RoutedLeases, TenantRoots, tenant_under};

const SCHEMA_OBJECT: &str = "_schema.pg";
const GRAPH_SUFFIX: &str = ".omni";

/// The storage root of a node, resolved into an object store, and the roots of the tenants
/// that have their own ([`GraphStore::set_tenant_roots`]): every operation on a tenant's graph
/// goes to its tenant's root.
#[derive(Debug, Clone)]
pub struct GraphStore {
    home: Arc<Root>,
    tenants: Arc<TenantRoots>,
    cache: NodeCache,
}

impl GraphStore {
    /// Opens the root: creates a local root directory, or configures S3 from the standard
    /// `AWS_*` variables (`AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` for S3-compatible stores).
    ///
    /// `memory://` is backed by a private temporary directory removed when the store is
    /// dropped: the engine opens graphs by URI and has no in-memory URI of its own.
    pub fn open(root: &StorageRoot, metrics: StoreMetrics) -> Result<GraphStore, RepoError> {
        Ok(GraphStore {
            home: Arc::new(Root::open(root, metrics)?),
            tenants: Arc::default(),
            cache: NodeCache::off(CacheMetrics::unregistered()),
        })
    }

    /// Gives each tenant of `roots` its own storage root (a tenant mapped to this node's root,
    /// or not in `roots`, uses this node's). Roots are opened here, without a request to
    /// them; if one cannot be, nothing changes. A tenant's root must not change once it has
    /// graphs: repos open already keep the root they were opened on.
    pub fn set_tenant_roots(
        &self,
        roots: &BTreeMap<TenantId, StorageRoot>,
    ) -> Result<(), RepoError> {
        self.tenants
            .replace(roots, &self.home.spec, &self.home.metrics)
    }

    /// The root of `tenant` when it is not this node's.
    pub fn tenant_root(&self, tenant: &TenantId) -> Option<StorageRoot> {
        self.tenants.get(tenant).map(|root| root.spec.clone())
    }

    /// The tenants with a root of their own, sorted.
    pub fn tenants_with_own_root(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> = self.tenants.snapshot().keys().cloned().collect();
        tenants.sort();
        tenants
    }

    /// The root holding `tenant`'s graphs, leases, maintenance status and usage.
    fn root(&self, tenant: &TenantId) -> Arc<Root> {
        self.tenants
            .get(tenant)
            .unwrap_or_else(|| Arc::clone(&self.home))
    }

    /// Every distinct root, this node's first, each as a store of its own (no tenant routes,
    /// no cache), with the tenants whose objects it holds: `None` for this node's root (every
    /// tenant without a root of its own), else those routed there. Where usage records are
    /// read from: a record in a tenant's root counts for the tenants routed there only, so
    /// that whoever can write that bucket cannot charge another tenant.
    pub fn roots(&self) -> Vec<(GraphStore, Option<Vec<TenantId>>)> {
        let view = |home: Arc<Root>| GraphStore {
            home,
            tenants: Arc::default(),
            cache: NodeCache::off(CacheMetrics::unregistered()),
        };
        let mut roots: Vec<(Arc<Root>, Vec<TenantId>)> = Vec::new();
        for (tenant, root) in self.tenants.snapshot().iter() {
            match roots.iter_mut().find(|(known, _)| known.spec == root.spec) {
                Some((_, tenants)) => tenants.push(tenant.clone()),
                None => roots.push((Arc::clone(root), vec![tenant.clone()])),
            }
        }
        let mut views = vec![(view(Arc::clone(&self.home)), None)];
        views.extend(roots.into_iter().map(|(root, mut tenants)| {
            tenants.sort();
            (view(root), Some(tenants))
        }));
        views
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
        self.root(&key.tenant)
            .uri(&graph_relative_path(&key.tenant, &key.graph))
    }

    /// Prepares the place where a new graph will be initialised (local roots need the
    /// directory to exist before `Omnigraph::init`).
    pub(crate) async fn prepare_graph_location(&self, key: &RepoKey) -> Result<(), RepoError> {
        if let Location::Local(_) = self.root(&key.tenant).location {
            tokio::fs::create_dir_all(self.graph_uri(key)).await?;
        }
        Ok(())
    }

    /// Checks that the store enforces conditional writes (see [`crate::probe`]).
    pub async fn probe_conditional_writes(&self) -> Result<ProbeReport, ProbeError> {
        let supports_update = matches!(self.home.location, Location::S3 { .. });
        let store = probe::Counted {
            store: self.home.store.as_ref(),
            metrics: &self.home.metrics,
        };
        probe::run(&store, &self.home.object_path(""), supports_update).await
    }

    /// The leases of every repo (see [`omnigraph_cloud_cluster::lease`]), each in its
    /// tenant's root.
    pub fn leases(&self, timing: LeaseTiming) -> LeaseStore {
        let backend = RoutedLeases {
            home: Arc::clone(&self.home.leases),
            tenants: Arc::clone(&self.tenants),
        };
        LeaseStore::new(
            Arc::new(backend),
            Arc::new(self.home.metrics.clone()),
            timing,
        )
    }

    /// Whether the graph exists (its schema object is present).
    pub async fn graph_exists(&self, key: &RepoKey) -> Result<bool, RepoError> {
        let root = self.root(&key.tenant);
        let path = root.object_path(&format!(
            "{}/{SCHEMA_OBJECT}",
            graph_relative_path(&key.tenant, &key.graph)
        ));
        let exists = match root.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err.into()),
        };
        // Counted under the graph only when it exists: probing ids must not grow the series.
        match exists {
            Ok(true) => root.metrics.record(StoreOp::Head, Some(key)),
            _ => root.metrics.record_tenant(StoreOp::Head, &key.tenant),
        }
        exists
    }

    /// The tenant's graphs, sorted by id.
    pub async fn list_graphs(&self, tenant: &TenantId) -> Result<Vec<GraphId>, RepoError> {
        let root = self.root(tenant);
        let prefix = root.object_path(&format!("tenants/{tenant}/graphs"));
        root.metrics.record_tenant(StoreOp::List, tenant);
        let listing = match root.store.list_with_delimiter(Some(&prefix)).await {
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
        let root = self.root(&key.tenant);
        let relative = graph_relative_path(&key.tenant, &key.graph);
        let schema = root.object_path(&format!("{relative}/{SCHEMA_OBJECT}"));
        root.metrics.record_tenant(StoreOp::Delete, &key.tenant);
        match root.store.delete(&schema).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        match &root.location {
            Location::Local(_) => match tokio::fs::remove_dir_all(self.graph_uri(key)).await {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(err.into()),
            },
            Location::S3 { .. } => {
                let prefix = root.object_path(&relative);
                root.metrics.record_tenant(StoreOp::List, &key.tenant);
                root.metrics.record_tenant(StoreOp::Delete, &key.tenant);
                let locations = root
                    .store
                    .list(Some(&prefix))
                    .map_ok(|meta| meta.location)
                    .boxed();
                root.store
                    .delete_stream(locations)
                    .try_collect::<Vec<_>>()
                    .await?;
                Ok(())
            }
        }
    }

    /// How many recovery sidecars (`__recovery/*.json`) the graph has: one listing.
    pub(crate) async fn recovery_sidecars(&self, key: &RepoKey) -> Result<usize, RepoError> {
        let listed = self.list_in_graph(key, "/__recovery").await?;
        Ok(listed
            .iter()
            .filter(|(path, _)| path.ends_with(".json"))
            .count())
    }

    /// Every object of the graph, as (path relative to the graph, size).
    pub(crate) async fn graph_files(&self, key: &RepoKey) -> Result<Vec<(String, u64)>, RepoError> {
        let listed = self.list_in_graph(key, "").await?;
        Ok(listed
            .into_iter()
            .map(|(path, meta)| (path, meta.size))
            .collect())
    }

    async fn list_in_graph(
        &self,
        key: &RepoKey,
        folder: &str,
    ) -> Result<Vec<(String, object_store::ObjectMeta)>, RepoError> {
        let root = self.root(&key.tenant);
        let relative = graph_relative_path(&key.tenant, &key.graph);
        let prefix = root.object_path(&format!("{relative}{folder}"));
        root.metrics.record(StoreOp::List, Some(key));
        Ok(list_under(root.store.as_ref(), &prefix).await?)
    }

    /// Records a repo's maintenance progress under `_system/maintenance/` (soft state), in
    /// its tenant's root.
    pub(crate) async fn put_maintenance_status(
        &self,
        key: &RepoKey,
        progress: &impl serde::Serialize,
    ) -> Result<(), RepoError> {
        let bytes = serde_json::to_vec_pretty(progress).expect("progress serializes");
        let root = self.root(&key.tenant);
        root.metrics.record(StoreOp::Put, Some(key));
        root.store
            .put(
                &root.object_path(&maintenance_status_path(key)),
                bytes.into(),
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn get_maintenance_status<T: serde::de::DeserializeOwned>(
        &self,
        key: &RepoKey,
    ) -> Result<Option<T>, RepoError> {
        let bytes = get_object(
            &self.root(&key.tenant),
            &maintenance_status_path(key),
            Some(key),
        )
        .await?;
        // Soft state: an unreadable status is as good as none.
        Ok(bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Every maintenance status object, with a version that changes on each write: those of
    /// this node's root (less the tenants routed elsewhere), and each routed tenant's.
    pub(crate) async fn list_maintenance_status(
        &self,
    ) -> Result<Vec<(RepoKey, String)>, RepoError> {
        let routed = self.tenants.snapshot();
        let mut statuses: Vec<(RepoKey, String)> = list_statuses(&self.home, MAINTENANCE_DIR)
            .await?
            .into_iter()
            .filter(|(key, _)| !routed.contains_key(&key.tenant))
            .collect();
        for (tenant, root) in routed.iter() {
            let folder = format!("{MAINTENANCE_DIR}/{tenant}");
            statuses.extend(
                list_statuses(root, &folder)
                    .await?
                    .into_iter()
                    .filter(|(key, _)| &key.tenant == tenant),
            );
        }
        Ok(statuses)
    }

    /// Writes soft state under `_system/` (`relative` starts there) in this node's root,
    /// counted under `key`'s graph when it is about one.
    pub async fn put_system_object(
        &self,
        relative: &str,
        bytes: Vec<u8>,
        key: Option<&RepoKey>,
    ) -> Result<(), RepoError> {
        self.home.metrics.record(StoreOp::Put, key);
        self.home
            .store
            .put(&self.home.object_path(relative), bytes.into())
            .await?;
        Ok(())
    }

    /// Reads soft state with the version [`GraphStore::put_system_object_if`] must name to
    /// replace it; `None` if absent.
    pub async fn get_system_object_versioned(
        &self,
        relative: &str,
    ) -> Result<Option<(bytes::Bytes, String)>, RepoError> {
        self.home.metrics.record(StoreOp::Get, None);
        cas::read(&self.home, relative).await
    }

    /// Writes soft state only if the object is still at `expected` (`None`: still absent);
    /// `false` when another writer got there first.
    pub async fn put_system_object_if(
        &self,
        relative: &str,
        bytes: Vec<u8>,
        expected: Option<String>,
    ) -> Result<bool, RepoError> {
        self.home.metrics.record(StoreOp::Put, None);
        cas::write(&self.home, relative, bytes, expected).await
    }

    /// Writes soft state that is never rewritten (a usage record), if absent, in `tenant`'s
    /// root (this node's for `None`): `false` when the object exists already.
    pub(crate) async fn create_system_object(
        &self,
        tenant: Option<&TenantId>,
        relative: &str,
        bytes: Vec<u8>,
    ) -> Result<bool, RepoError> {
        let root = match tenant {
            Some(tenant) => self.root(tenant),
            None => Arc::clone(&self.home),
        };
        root.metrics.record(StoreOp::Put, None);
        let create = object_store::PutOptions::from(object_store::PutMode::Create);
        let path = root.object_path(relative);
        match root.store.put_opts(&path, bytes.into(), create).await {
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
        self.home.metrics.record(StoreOp::List, None);
        let listed = list_under(self.home.store.as_ref(), &self.home.object_path(relative)).await?;
        let mut paths: Vec<String> = listed
            .into_iter()
            .map(|(path, _)| format!("{relative}/{path}"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// The names of the folders directly under `relative` (one delimited listing).
    pub async fn list_folders(&self, relative: &str) -> Result<Vec<String>, RepoError> {
        self.home.metrics.record(StoreOp::List, None);
        let prefix = self.home.object_path(relative);
        let listing = match self.home.store.list_with_delimiter(Some(&prefix)).await {
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
        get_object(&self.home, relative, key).await
    }
}

async fn get_object(
    root: &Root,
    relative: &str,
    key: Option<&RepoKey>,
) -> Result<Option<bytes::Bytes>, RepoError> {
    root.metrics.record(StoreOp::Get, key);
    match root.store.get(&root.object_path(relative)).await {
        Ok(result) => Ok(Some(result.bytes().await?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The maintenance status objects under `folder` of `root` (`_system/maintenance` or one
/// tenant's folder in it), by repo.
async fn list_statuses(root: &Root, folder: &str) -> Result<Vec<(RepoKey, String)>, RepoError> {
    root.metrics.record(StoreOp::List, None);
    let listed = list_under(root.store.as_ref(), &root.object_path(folder)).await?;
    Ok(listed
        .into_iter()
        .filter_map(|(path, meta)| {
            let full = format!("{folder}/{path}");
            let tenant = tenant_under(MAINTENANCE_DIR, &full)?;
            let file = full.strip_prefix(MAINTENANCE_DIR)?.strip_prefix('/')?;
            let graph = file
                .strip_prefix(tenant)?
                .strip_prefix('/')?
                .strip_suffix(".json")?;
            let key = RepoKey::new(TenantId::new(tenant).ok()?, GraphId::new(graph).ok()?);
            Some((key, listing_version(&meta)))
        })
        .collect())
}

const MAINTENANCE_DIR: &str = "_system/maintenance";

fn maintenance_status_path(key: &RepoKey) -> String {
    format!("{MAINTENANCE_DIR}/{}/{}.json", key.tenant, key.graph)
}

fn graph_relative_path(tenant: &TenantId, graph: &GraphId) -> String {
    format!("tenants/{tenant}/graphs/{graph}{GRAPH_SUFFIX}")
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
