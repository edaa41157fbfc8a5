//! The model engine: a graph that is nothing but its `__manifest`, a list of commits advanced
//! by compare-and-swap in the simulated store. It serves the coalescer through the same
//! [`Publisher`] trait as the engine, and fails the way the engine does when the store fails:
//! a lost race is a manifest conflict, an unreachable store an error whose message the node
//! classes as unavailable or internal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use omnigraph::error::{ManifestConflictDetails, ManifestError, ManifestErrorKind, OmniError};
use omnigraph_cloud_cluster::Clock;
use omnigraph_compiler::catalog::Catalog;
use omnigraph_compiler::query::ast::Literal;
use omnigraph_compiler::schema::parser::parse_schema;
use omnigraph_compiler::{MutationResult, ParamMap, build_catalog};

use super::link::Link;
use super::world::{Commit, World};
use crate::RepoError;
use crate::repo::WriteOp;
use crate::repo::WriteOutcome;
use crate::repo::coalescer::{Publication, Publisher};

pub(super) const SCHEMA: &str = "node Item { id: String @key }";
pub(super) const INSERT: &str = "query ins($id: String) { insert Item { id: $id } }";

/// One node's handle on the model graph.
pub(super) struct ModelGraph {
    link: Link,
    catalog: Arc<Catalog>,
    clock: Clock,
    /// The writer-lease epoch this node publishes under (set before each unit).
    epoch: AtomicU64,
}

impl ModelGraph {
    pub(super) fn new(link: Link, clock: Clock) -> ModelGraph {
        let schema = parse_schema(SCHEMA).expect("the model schema parses");
        ModelGraph {
            link,
            catalog: Arc::new(build_catalog(&schema).expect("the model catalog builds")),
            clock,
            epoch: AtomicU64::new(0),
        }
    }

    pub(super) fn catalog_ref(&self) -> &Catalog {
        &self.catalog
    }

    pub(super) fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Publishes `ids` as one commit. Like the engine's writes, it reads the head first and
    /// then swaps it for its commit, so a race is lost only to a commit landing in between.
    async fn commit(&self, ids: Vec<String>) -> Result<(), OmniError> {
        let base = self.head().await?;
        let (node, epoch) = (self.link.node, self.epoch.load(Ordering::Relaxed));
        let created_us = self.wall_us();
        let landed = self
            .link
            .call(move |world| {
                Box::pin(async move { cas(&world, base, ids, node, epoch, created_us) })
            })
            .await
            .map_err(store_error)?;
        landed.map(|_| ()).map_err(|actual| {
            OmniError::Manifest(ManifestError {
                kind: ManifestErrorKind::Conflict,
                message: format!("expected __manifest at version {base}, found {actual}"),
                details: Some(ManifestConflictDetails::ExpectedVersionMismatch {
                    table_key: "node:Item".into(),
                    expected: base,
                    actual,
                }),
            })
        })
    }

    /// The manifest's head as the store has it now.
    async fn head(&self) -> Result<u64, OmniError> {
        self.link
            .call(|world| Box::pin(async move { world.head() }))
            .await
            .map_err(store_error)
    }
}

/// A failed store request as the engine reports it.
fn store_error(message: &str) -> OmniError {
    OmniError::Lance(message.to_string())
}

/// The store's side of a publish: a new commit if the head is still at `base`, else the head.
fn cas(
    world: &World,
    base: u64,
    ids: Vec<String>,
    node: usize,
    epoch: u64,
    created_us: i64,
) -> Result<u64, u64> {
    let landed_ms = world.elapsed_ms();
    let mut manifest = world.manifest.lock().expect("manifest");
    let head = manifest.len() as u64 + 1;
    if head != base {
        return Err(head);
    }
    manifest.push(Commit {
        version: head + 1,
        ids,
        node,
        epoch,
        created_us,
        landed_ms,
    });
    Ok(head + 1)
}

/// The write ids a publication carries: the `id` of every loaded record, or every string
/// parameter of a combined mutation (its only parameters are the renamed `$id`s).
fn ids_in(publication: &Publication) -> Vec<String> {
    match publication {
        Publication::Load { data, .. } => data
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|record| record["data"]["id"].as_str().map(str::to_string))
            .collect(),
        Publication::Mutation { params, .. } => strings(params),
    }
}

fn strings(params: &ParamMap) -> Vec<String> {
    params
        .values()
        .filter_map(|value| match value {
            Literal::String(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[async_trait]
impl Publisher for ModelGraph {
    fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog)
    }

    async fn alone(&self, op: WriteOp) -> Result<WriteOutcome, RepoError> {
        let WriteOp::Mutate { params, .. } = op else {
            return Err(RepoError::Invalid {
                message: "the simulation writes inserts only".into(),
            });
        };
        self.commit(strings(&params))
            .await
            .map_err(RepoError::Engine)?;
        Ok(WriteOutcome::Mutated(MutationResult {
            affected_nodes: 1,
            affected_edges: 0,
        }))
    }

    async fn publish(
        &self,
        _branch: &str,
        publication: &Publication,
        _actor: Option<&str>,
    ) -> Result<(), OmniError> {
        self.commit(ids_in(publication)).await
    }

    async fn refresh(&self) -> Result<(), OmniError> {
        // Every commit reads the head first, so catching up is that read alone.
        self.head().await.map(|_| ())
    }

    async fn nothing_published_since(&self, _branch: &str, since_us: i64) -> bool {
        let listed = self
            .link
            .call(move |world| {
                Box::pin(async move {
                    let manifest = world.manifest.lock().expect("manifest");
                    manifest.iter().all(|commit| commit.created_us < since_us)
                })
            })
            .await;
        listed.unwrap_or(false)
    }

    async fn explain(&self, _branch: &str, err: OmniError) -> RepoError {
        RepoError::Engine(err)
    }

    fn wall_us(&self) -> i64 {
        self.clock.wall_ms() as i64 * 1000
    }

    async fn version(&self, _branch: &str) -> Option<u64> {
        // Like the engine's strong read: the head as the store has it now.
        self.head().await.ok()
    }
}
