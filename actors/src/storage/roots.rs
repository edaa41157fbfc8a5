//! Storage roots: the node's own, and those of tenants given a root of their own
//! (docs/control-plane.md#a-tenant-on-its-own-storage-root).
//!
//! A tenant's graphs, the leases of its repos, their maintenance status and its usage records
//! live in its root when it has one, in the node's otherwise. Everything else (node leases, the
//! bundle, the tenant directory) stays in the node's root. The map of tenants to roots comes
//! from the signed bundle, and a tenant's root never changes once it has graphs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use omnigraph_cloud_cluster::lease::{
    CasOutcome, LEASE_DIR, LeaseBackend, LeaseError, LocalBackend, ObjectStoreBackend, Stored,
};
use omnigraph_cloud_config::{StorageRoot, TenantId};

use crate::RepoError;
use crate::metrics::StoreMetrics;

/// One storage root, resolved into an object store.
pub(super) struct Root {
    pub(super) spec: StorageRoot,
    pub(super) location: Location,
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) metrics: StoreMetrics,
    /// The lease objects under this root.
    pub(super) leases: Arc<dyn LeaseBackend>,
    /// Keeps a `memory://` root's private directory alive as long as the store.
    _ephemeral: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(super) enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Root {
    /// Opens `spec`: creates a local root directory, or configures S3 from the standard
    /// `AWS_*` variables. `memory://` is a private temporary directory, removed with the root.
    pub(super) fn open(spec: &StorageRoot, metrics: StoreMetrics) -> Result<Root, RepoError> {
        let (location, store, ephemeral): (Location, Arc<dyn ObjectStore>, _) = match spec {
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
                let store = super::s3::store_from_env(bucket)?;
                let location = Location::S3 {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                };
                (location, Arc::new(store), None)
            }
        };
        let leases: Arc<dyn LeaseBackend> = match &location {
            Location::Local(root) => Arc::new(LocalBackend::new(root.clone())),
            Location::S3 { prefix, .. } => Arc::new(ObjectStoreBackend::new(
                Arc::clone(&store),
                ObjectPath::from(prefix.as_str()),
            )),
        };
        Ok(Root {
            spec: spec.clone(),
            location,
            store,
            metrics,
            leases,
            _ephemeral: ephemeral,
        })
    }

    /// The object path of `relative` (a path from the root).
    pub(super) fn object_path(&self, relative: &str) -> ObjectPath {
        match &self.location {
            Location::S3 { prefix, .. } if !prefix.is_empty() => {
                ObjectPath::from(format!("{prefix}/{relative}"))
            }
            _ => ObjectPath::from(relative),
        }
    }

    /// The URI of `relative` as the engine opens it.
    pub(super) fn uri(&self, relative: &str) -> String {
        match &self.location {
            Location::Local(root) => root.join(relative).to_string_lossy().into_owned(),
            Location::S3 { bucket, prefix } if prefix.is_empty() => {
                format!("s3://{bucket}/{relative}")
            }
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{relative}"),
        }
    }
}

/// The tenants that have a root of their own, shared by every clone of a `GraphStore`.
#[derive(Debug, Default)]
pub(super) struct TenantRoots {
    routes: RwLock<Arc<HashMap<TenantId, Arc<Root>>>>,
}

impl TenantRoots {
    pub(super) fn get(&self, tenant: &TenantId) -> Option<Arc<Root>> {
        self.snapshot().get(tenant).cloned()
    }

    pub(super) fn snapshot(&self) -> Arc<HashMap<TenantId, Arc<Root>>> {
        Arc::clone(&self.routes.read().expect("tenant roots lock"))
    }

    /// Replaces the map with `wanted`, opening the roots not open yet; on any failure nothing
    /// changes. `home` is the node's own root: a tenant routed there needs no route.
    pub(super) fn replace(
        &self,
        wanted: &BTreeMap<TenantId, StorageRoot>,
        home: &StorageRoot,
        metrics: &StoreMetrics,
    ) -> Result<(), RepoError> {
        let current = self.snapshot();
        let mut open: Vec<Arc<Root>> = current.values().cloned().collect();
        let mut routes = HashMap::new();
        for (tenant, spec) in wanted {
            if spec == home {
                continue;
            }
            if matches!(spec, StorageRoot::Memory) {
                return Err(RepoError::Invalid {
                    message: format!("tenant '{tenant}': a memory:// root is not shared"),
                });
            }
            let root = match open.iter().find(|root| &root.spec == spec) {
                Some(root) => Arc::clone(root),
                None => {
                    let root = Arc::new(Root::open(spec, metrics.clone())?);
                    open.push(Arc::clone(&root));
                    root
                }
            };
            routes.insert(tenant.clone(), root);
        }
        *self.routes.write().expect("tenant roots lock") = Arc::new(routes);
        Ok(())
    }
}

/// The tenant a root-relative path under `dir/` belongs to: `dir/{tenant}/...`.
pub(super) fn tenant_under<'a>(dir: &str, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(dir)?.strip_prefix('/')?;
    rest.split('/').next().filter(|tenant| !tenant.is_empty())
}

/// Lease objects, each in the root of its repo's tenant: `_system/leases/{tenant}/...` goes to
/// that tenant's root if it has one, every other path (node leases) to the node's.
pub(super) struct RoutedLeases {
    pub(super) home: Arc<dyn LeaseBackend>,
    pub(super) tenants: Arc<TenantRoots>,
}

impl RoutedLeases {
    fn route(&self, path: &str) -> Arc<dyn LeaseBackend> {
        tenant_under(LEASE_DIR, path)
            .and_then(|tenant| TenantId::new(tenant).ok())
            .and_then(|tenant| self.tenants.get(&tenant))
            .map(|root| Arc::clone(&root.leases))
            .unwrap_or_else(|| Arc::clone(&self.home))
    }
}

#[async_trait]
impl LeaseBackend for RoutedLeases {
    async fn read(&self, path: &str) -> Result<Option<Stored>, LeaseError> {
        self.route(path).read(path).await
    }

    async fn write(
        &self,
        path: &str,
        bytes: Vec<u8>,
        expected: Option<String>,
    ) -> Result<CasOutcome, LeaseError> {
        self.route(path).write(path, bytes, expected).await
    }

    /// Listing every lease lists the node's root (less the tenants routed elsewhere, whose
    /// residue there is not theirs any more) and each routed tenant's folder in its root.
    async fn list(&self, dir: &str) -> Result<Vec<(String, String)>, LeaseError> {
        if dir.trim_end_matches('/') != LEASE_DIR {
            return self.route(dir).list(dir).await;
        }
        let routed = self.tenants.snapshot();
        let mut listed: Vec<(String, String)> = self
            .home
            .list(dir)
            .await?
            .into_iter()
            .filter(|(path, _)| {
                tenant_under(LEASE_DIR, path)
                    .and_then(|tenant| TenantId::new(tenant).ok())
                    .is_none_or(|tenant| !routed.contains_key(&tenant))
            })
            .collect();
        for (tenant, root) in routed.iter() {
            listed.extend(root.leases.list(&format!("{LEASE_DIR}/{tenant}")).await?);
        }
        Ok(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_tenant() {
        assert_eq!(
            tenant_under(LEASE_DIR, "_system/leases/acme/g/writer.json"),
            Some("acme")
        );
        assert_eq!(tenant_under(LEASE_DIR, "_system/leases"), None);
        assert_eq!(tenant_under(LEASE_DIR, "_system/nodes/n1.json"), None);
        assert_eq!(
            tenant_under("_system/maintenance", "_system/maintenance/t/g.json"),
            Some("t")
        );
    }
}
