//! Fast open: the engine's open reads its text objects one after another (staging checks,
//! recovery sidecars, the schema and its contract), then lists `__manifest`'s versions and
//! its branches. On the authority those reads are kept, so reading them all at once first
//! turns the open's chain of round trips into one.
//!
//! The names are the engine 0.8 layout's (and Lance 7's); a name that stops matching costs
//! one wasted read and the open's own read, never a wrong answer.

use std::sync::Arc;

use futures::TryStreamExt;
use futures::future::join_all;
use lance::io::{ObjectStore, ObjectStoreParams, ObjectStoreRegistry};
use omnigraph::storage::StorageAdapter;
use tracing::debug;

use super::{CachingStorage, RepoCache};

const SCHEMA_FILES: [&str; 3] = ["_schema.pg", "_schema.ir.json", "__schema_state.json"];
const STAGING_SUFFIX: &str = ".staging";
const RECOVERY_DIR: &str = "__recovery";
const MANIFEST_DATASET: &str = "__manifest";

/// Reads, at once, what opening the graph at `uri` will read. Failures are left for the open
/// to meet (and are not kept).
pub(crate) async fn before_open(storage: &CachingStorage, repo: &Arc<RepoCache>, uri: &str) {
    let at = |name: &str| format!("{}/{name}", uri.trim_end_matches('/'));
    let texts = SCHEMA_FILES.map(&at);
    let staging = SCHEMA_FILES.map(|name| at(&format!("{name}{STAGING_SUFFIX}")));
    let recovery = at(RECOVERY_DIR);
    let reads = texts.iter().map(|uri| async move {
        let _ = storage.read_text(uri).await;
    });
    let checks = staging.iter().chain(&texts).map(|uri| async move {
        let _ = storage.exists(uri).await;
    });
    let listing = async {
        let _ = storage.list_dir(&recovery).await;
    };
    futures::join!(
        join_all(reads),
        join_all(checks),
        listing,
        manifest_listings(repo, uri)
    );
}

/// Lists, through the repo's Lance wrapper, what opening `__manifest` lists: its versions
/// (the newest is the open's version) and its branches.
async fn manifest_listings(repo: &Arc<RepoCache>, uri: &str) {
    let params = ObjectStoreParams {
        object_store_wrapper: Some(repo.wrapper()),
        ..ObjectStoreParams::default()
    };
    let registry = Arc::new(ObjectStoreRegistry::default());
    let (store, base) = match ObjectStore::from_uri_and_params(registry, uri, &params).await {
        Ok(opened) => opened,
        Err(err) => {
            debug!(repo = %repo.key, error = %err, "no store to prefetch listings from");
            return;
        }
    };
    let manifest = base.join(MANIFEST_DATASET);
    let versions = manifest.clone().join("_versions");
    let branches = manifest.join("_refs").join("branches");
    let _ = futures::join!(
        store.inner.list(Some(&versions)).try_collect::<Vec<_>>(),
        store.inner.list_with_delimiter(Some(&branches))
    );
}
