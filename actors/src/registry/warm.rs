//! Pre-warming: graphs activated, and their tables opened, before their first request, on
//! demand (`POST /graphs/{graph_id}/warm`) and after a restart (the node's warm set).
//!
//! A node with a configured id records the graphs warm at shutdown, and again whenever one
//! is evicted, in `_system/warm/{node id}.json`, and warms them again when it starts, so that
//! their first request finds them open (and, on the graph's cache authority, its schema and
//! listings in memory); a node that crashed warms what it had at its last eviction or clean
//! stop. The record is soft state: a missing or unreadable one warms nothing.

use std::sync::atomic::Ordering;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::Registry;
use crate::{RepoError, RepoKey};

/// How many graphs a restart warms at once.
const RESTORE_CONCURRENCY: usize = 4;

#[derive(Serialize, Deserialize)]
struct WarmSet {
    graphs: Vec<WarmGraph>,
}

#[derive(Serialize, Deserialize)]
struct WarmGraph {
    tenant: String,
    graph: String,
}

fn warm_set_path(node: &str) -> String {
    format!("_system/warm/{node}.json")
}

impl Registry {
    /// Activates `key` in the background, unless it is warm already; `true` if it was.
    pub fn warm(&self, key: RepoKey) -> bool {
        if self.is_warm(&key) {
            return true;
        }
        let registry = self.clone();
        tokio::spawn(async move {
            if let Err(err) = registry.prewarm(&key).await {
                debug!(repo = %key, error = %err, "pre-warming failed");
            }
        });
        false
    }

    /// Activates `key` and opens its tables, so that its first request finds both done.
    async fn prewarm(&self, key: &RepoKey) -> Result<(), RepoError> {
        let repo = self.repo(key).await?;
        let tables = repo.open_tables().await?;
        debug!(repo = %key, tables, "pre-warmed");
        Ok(())
    }

    /// The repos warm on this node now, sorted.
    pub fn warm_repos(&self) -> Vec<RepoKey> {
        let mut keys: Vec<RepoKey> = self
            .inner
            .slots
            .iter()
            .filter(|slot| slot.handle.get().is_some())
            .map(|slot| slot.key().clone())
            .collect();
        keys.sort_by(|a, b| (&a.tenant, &a.graph).cmp(&(&b.tenant, &b.graph)));
        keys
    }

    /// Warms again, in the background, the graphs node `node` (the configured node id)
    /// recorded, then records its warm set whenever a graph leaves it, until shutdown records
    /// it a last time ([`Registry::save_warm_set`]). Until the restore is over,
    /// [`Registry::warm_set_restored`] says false, and nothing is recorded (a stop meanwhile
    /// would record only what was restored so far).
    pub fn restore_warm_set_in_background(&self, node: String) {
        self.inner.warm_set_pending.store(true, Ordering::SeqCst);
        let registry = self.clone();
        tokio::spawn(async move {
            registry.restore_warm_set(&node).await;
            let _ = registry.inner.warm_set_node.set(node);
            registry
                .inner
                .warm_set_pending
                .store(false, Ordering::SeqCst);
        });
    }

    /// A graph left the warm set: record it again, in the background.
    pub(super) fn warm_set_changed(self) {
        let Some(node) = self.inner.warm_set_node.get().cloned() else {
            return;
        };
        if self.is_shutting_down() {
            return;
        }
        tokio::spawn(async move {
            if let Err(err) = self.record_warm_set(&node, false).await {
                warn!(error = %err, "the warm set could not be recorded");
            }
        });
    }

    /// Records the warm set of node `node` (its configured id) a last time, at shutdown: no
    /// record made in the background may land after it.
    pub async fn save_warm_set(&self, node: &str) -> Result<usize, RepoError> {
        self.record_warm_set(node, true).await
    }

    /// Records the warm set as it is now, unless the last record was made; how many graphs.
    async fn record_warm_set(&self, node: &str, last: bool) -> Result<usize, RepoError> {
        let _one_at_a_time = self.inner.warm_set_saves.lock().await;
        if self.inner.warm_set_closed.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let graphs: Vec<WarmGraph> = self
            .warm_repos()
            .into_iter()
            .map(|key| WarmGraph {
                tenant: key.tenant.to_string(),
                graph: key.graph.to_string(),
            })
            .collect();
        let count = graphs.len();
        let bytes = serde_json::to_vec_pretty(&WarmSet { graphs }).expect("warm set serializes");
        self.inner
            .store
            .put_system_object(&warm_set_path(node), bytes, None)
            .await?;
        if last {
            self.inner.warm_set_closed.store(true, Ordering::SeqCst);
        }
        Ok(count)
    }

    /// Warms the graphs node `node` recorded, a few at a time; how many were warmed.
    async fn restore_warm_set(&self, node: &str) -> usize {
        let recorded = match self
            .inner
            .store
            .get_system_object(&warm_set_path(node), None)
            .await
        {
            Ok(Some(bytes)) => serde_json::from_slice::<WarmSet>(&bytes).ok(),
            Ok(None) => None,
            Err(err) => {
                warn!(error = %err, "the warm set could not be read; nothing pre-warmed");
                None
            }
        };
        let keys: Vec<RepoKey> = recorded
            .map(|set| set.graphs)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|g| {
                let tenant = omnigraph_cloud_config::TenantId::new(&g.tenant).ok()?;
                let graph = omnigraph_cloud_config::GraphId::new(&g.graph).ok()?;
                Some(RepoKey::new(tenant, graph))
            })
            .collect();
        let warmed = futures::stream::iter(keys)
            .map(|key| async move { self.prewarm(&key).await.is_ok() })
            .buffer_unordered(RESTORE_CONCURRENCY)
            .filter(|warmed| futures::future::ready(*warmed))
            .count()
            .await;
        if warmed > 0 {
            info!(graphs = warmed, "warm set restored");
        }
        warmed
    }

    /// Whether no restore of a recorded warm set is under way
    /// ([`Registry::restore_warm_set_in_background`]).
    pub fn warm_set_restored(&self) -> bool {
        !self.inner.warm_set_pending.load(Ordering::SeqCst)
    }
}
