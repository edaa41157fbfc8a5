//! The write coalescer of one repo: group commit without artificial delay.
//!
//! Every write of a graph ends in one compare-and-swap on its `__manifest`, so one publish per
//! request caps a hot graph at a few writes per second and makes concurrent writers fight.
//! Instead, while one publish is in flight, arriving writes wait in this queue, and the next
//! publish takes as many of them as can share it:
//!
//! - *Insert-only mutations* of the same branch and actor (every statement an `insert` whose
//!   values are parameters or `now()`) are combined into one generated mutation, each
//!   request's parameters renamed `r{i}_{name}` so that they cannot collide. One insert
//!   affects exactly one node or edge, so each caller's own counts are known in advance.
//! - Everything else (updates, deletes, loads, schema, branch operations, merges) runs alone.
//!   A batch never jumps over an exclusive write that arrived before its members, and an
//!   exclusive write never jumps over the writes before it.
//!
//! A batch whose statements are all node inserts (no `now()`, no key twice) is published as
//! one merge-mode load instead: the engine's keyed insert is an upsert by key, exactly what a
//! merge load does, and a load costs a constant number of object-store round trips where a
//! mutation pays one listing per statement (measured: 32 inserts, 41 LISTs; a 128-row load,
//! 10). On S3 that is the difference between a few hundred milliseconds and tens of seconds.
//!
//! A combined mutation is atomic: if it fails, nothing was published, and it is split in halves
//! that are tried again until the failing requests run alone, with their original text, and
//! get their own errors. A publish lost to another writer (`manifest_conflict`) is retried after
//! a refresh, a bounded number of times (inserts do not depend on what they read). Callers are
//! answered only after the publish that holds their write returned.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures::future::BoxFuture;
use omnigraph::db::Omnigraph;
use omnigraph::error::OmniError;
use omnigraph::loader::{LoadMode, LoadResult};
use omnigraph_cloud_config::WriteConfig;
use omnigraph_compiler::catalog::Catalog;
use omnigraph_compiler::query::ast::{MatchValue, Mutation, QueryDecl};
use omnigraph_compiler::query::parser::parse_query;
use omnigraph_compiler::query::typecheck::typecheck_query_decl;
use omnigraph_compiler::{Literal, MutationResult, ParamMap};
use ractor::RpcReplyPort;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::messages::{WriteOp, WriteOutcome};
use super::{branches, writes};
use crate::maintenance::Fence;
use crate::metrics::CoalescerMetrics;
use crate::{ErrorKind, RepoError};

/// How many times a combined publish that lost a race to another writer is re-planned.
const CONFLICT_RETRIES: usize = 3;
const COMBINED_QUERY_NAME: &str = "coalesced_inserts";

pub(crate) type Reply = RpcReplyPort<Result<WriteOutcome, RepoError>>;

/// A queued write.
pub(crate) struct Pending {
    op: WriteOp,
    reply: Reply,
    /// Set when the write can share a publish with others.
    plan: Option<InsertPlan>,
    /// Set when the write is a load that can share a publish with other loads.
    load: Option<LoadPlan>,
    bytes: usize,
}

/// An insert-only mutation, parsed, with its own affected counts known in advance.
struct InsertPlan {
    decl: QueryDecl,
    nodes: usize,
    edges: usize,
}

/// An append or merge load without `from`, with its own rows per table known in advance and
/// the node keys it writes (loads that write the same key never share a publish).
struct LoadPlan {
    nodes: HashMap<String, usize>,
    edges: HashMap<String, usize>,
    keys: std::collections::HashSet<(String, String)>,
}

impl Pending {
    fn shares(&self) -> bool {
        self.plan.is_some() || self.load.is_some()
    }
}

/// What the next publish will be.
pub(crate) enum Unit {
    Alone(Box<Pending>),
    Batch(Vec<Pending>),
}

impl Unit {
    /// Request bytes of the writes in the unit.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Unit::Alone(pending) => pending.bytes,
            Unit::Batch(batch) => batch.iter().map(|pending| pending.bytes).sum(),
        }
    }

    /// Answers every write of the unit with an error made by `err`, applying none.
    pub(crate) fn refuse(self, err: impl Fn() -> RepoError) {
        match self {
            Unit::Alone(pending) => {
                let _ = pending.reply.send(Err(err()));
            }
            Unit::Batch(batch) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(err()));
                }
            }
        }
    }
}

pub(crate) struct Coalescer {
    queue: VecDeque<Pending>,
    settings: WriteConfig,
    metrics: CoalescerMetrics,
}

impl Coalescer {
    pub(crate) fn new(settings: WriteConfig, metrics: CoalescerMetrics) -> Coalescer {
        Coalescer {
            queue: VecDeque::new(),
            settings,
            metrics,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Forgets queued writes whose caller went away (disconnected, or gave up after
    /// call_timeout): that caller was told its write is not acknowledged, so it is not applied
    /// either, and it does not hold a place in the bounded queue.
    fn drop_abandoned(&mut self) {
        let queued = self.queue.len();
        self.queue.retain(|pending| !pending.reply.is_closed());
        let abandoned = queued - self.queue.len();
        if abandoned > 0 {
            self.metrics.queue_depth.dec_by(abandoned as i64);
            debug!(abandoned, "dropped queued writes whose callers went away");
        }
    }

    /// Queues a write, or refuses it (429) when the queue is full.
    pub(crate) fn push(&mut self, op: WriteOp, reply: Reply, catalog: &Catalog) {
        if self.queue.len() >= self.settings.max_queue {
            self.drop_abandoned();
        }
        if self.queue.len() >= self.settings.max_queue {
            self.metrics.rejected.inc();
            let _ = reply.send(Err(RepoError::Overloaded {
                message: format!(
                    "too many writes queued for this graph ({}); retry later",
                    self.settings.max_queue
                ),
            }));
            return;
        }
        let (plan, load) = match self.settings.coalesce {
            true => (insert_plan(&op, catalog), load_plan(&op, catalog)),
            false => (None, None),
        };
        let bytes = op_bytes(&op);
        self.queue.push_back(Pending {
            op,
            reply,
            plan,
            load,
            bytes,
        });
        self.metrics.queue_depth.inc();
    }

    /// Takes the next unit of work: the head of the queue alone, or the head and every later
    /// write that can share its publish, up to the first exclusive write and the batch bounds.
    pub(crate) fn next_unit(&mut self) -> Option<Unit> {
        self.drop_abandoned();
        let head = self.queue.pop_front()?;
        self.metrics.queue_depth.dec();
        if !head.shares() {
            return Some(Unit::Alone(Box::new(head)));
        }
        let key = batch_key(&head.op);
        let mut bytes = head.bytes;
        let mut keys = head
            .load
            .as_ref()
            .map(|load| load.keys.clone())
            .unwrap_or_default();
        let mut batch = vec![head];
        let mut index = 0;
        while index < self.queue.len() && batch.len() < self.settings.max_batch_writes {
            let candidate = &self.queue[index];
            if !candidate.shares() {
                break; // an exclusive write: nothing after it may run before it
            }
            if let Some(load) = &candidate.load
                && batch_key(&candidate.op) == key
                && !load.keys.is_disjoint(&keys)
            {
                break; // it writes a key of the batch: it must run after it
            }
            if batch_key(&candidate.op) == key
                && bytes + candidate.bytes <= self.settings.max_batch_bytes
            {
                bytes += candidate.bytes;
                let taken = self.queue.remove(index).expect("index is in bounds");
                if let Some(load) = &taken.load {
                    keys.extend(load.keys.iter().cloned());
                }
                batch.push(taken);
                self.metrics.queue_depth.dec();
            } else {
                index += 1;
            }
        }
        Some(Unit::Batch(batch))
    }
}

/// Writes still queued when the actor goes away (it failed, or was stopped) are dropped with
/// their reply ports, so their callers are told the write was not acknowledged; the gauge
/// forgets them. This runs on every path: after a panic the actor's state is dropped without
/// `post_stop`.
impl Drop for Coalescer {
    fn drop(&mut self) {
        self.metrics.queue_depth.dec_by(self.queue.len() as i64);
    }
}

/// Runs a unit on the engine and answers every caller in it.
///
/// Returns whether a schema change was applied, so that its declared indexes get built.
pub(crate) async fn execute(
    engine: &Arc<Omnigraph>,
    unit: Unit,
    metrics: &CoalescerMetrics,
    fence: &mut Fence,
) -> bool {
    let started = Instant::now();
    match unit {
        Unit::Alone(pending) => {
            let result = under_fence(fence, writes::execute(engine, pending.op))
                .await
                .map_err(unacknowledged);
            let schema_changed =
                matches!(&result, Ok(WriteOutcome::SchemaApplied(applied)) if applied.applied);
            let _ = pending.reply.send(result);
            metrics
                .publish_seconds
                .observe(started.elapsed().as_secs_f64());
            schema_changed
        }
        Unit::Batch(batch) => {
            run_batch(engine, batch, metrics, fence).await;
            false
        }
    }
}

/// Publishes a batch of insert-only mutations as one, splitting it on failure. The halves
/// are kept in a work list rather than recursed into: the engine's futures are large, and
/// nesting them for every split would exhaust a worker thread's stack.
async fn run_batch(
    engine: &Arc<Omnigraph>,
    batch: Vec<Pending>,
    metrics: &CoalescerMetrics,
    fence: &mut Fence,
) {
    let mut work = vec![batch];
    while let Some(batch) = work.pop() {
        if let Some((first, second)) = publish(engine, batch, metrics, fence).await {
            metrics.splits.inc();
            work.push(second);
            work.push(first); // the earlier half goes first
        }
    }
}

/// Publishes one batch and answers its callers, or returns its two halves when something in
/// it is wrong (nothing was published then).
async fn publish(
    engine: &Arc<Omnigraph>,
    batch: Vec<Pending>,
    metrics: &CoalescerMetrics,
    fence: &mut Fence,
) -> Option<(Vec<Pending>, Vec<Pending>)> {
    let started = Instant::now();
    if batch.len() == 1 {
        // Alone, a write runs with its own text: its result and its error are its own.
        let pending = batch.into_iter().next().expect("one write");
        let result = under_fence(fence, writes::execute(engine, pending.op))
            .await
            .map_err(unacknowledged);
        let _ = pending.reply.send(result);
        metrics.batches.inc();
        metrics.batch_writes.observe(1.0);
        metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        return None;
    }
    let (_, branch, actor) = batch_key(&batch[0].op);
    // Commit times are microseconds; milliseconds err on the side of "maybe published".
    let publish_began_us = crate::lease::now_ms() as i64 * 1000;
    let publication = if batch[0].load.is_some() {
        let (mode, data) = concatenated_load(&batch);
        Publication::Load { data, mode }
    } else if let Some(data) = node_load(&batch, &engine.catalog()) {
        Publication::Load {
            data,
            mode: LoadMode::Merge,
        }
    } else {
        let (source, params) = combine(&batch);
        Publication::Mutation { source, params }
    };
    let outcome = fence
        .run(retrying_lost_races(engine, metrics, || {
            Box::pin(async {
                match &publication {
                    Publication::Load { data, mode } => engine
                        .load_as(&branch, None, data, *mode, actor.as_deref())
                        .await
                        .map(|_| ()),
                    Publication::Mutation { source, params } => engine
                        .mutate_as(
                            &branch,
                            source,
                            COMBINED_QUERY_NAME,
                            params,
                            actor.as_deref(),
                        )
                        .await
                        .map(|_| ()),
                }
            })
        }))
        .await;
    metrics
        .publish_seconds
        .observe(started.elapsed().as_secs_f64());
    // `None`: cut short by the fence; `Some(err)`: the engine's own failure.
    let outcome = match outcome {
        Some(Ok(())) => Ok(()),
        Some(Err(err)) => Err(Some(err)),
        None => Err(None),
    };
    match outcome {
        Ok(()) => {
            metrics.batches.inc();
            metrics.batch_writes.observe(batch.len() as f64);
            debug!(writes = batch.len(), "coalesced publish");
            for pending in batch {
                let outcome = own_outcome(&pending, &branch);
                let _ = pending.reply.send(Ok(outcome));
            }
            None
        }
        Err(err) => {
            let err = match err {
                Some(err) => branches::explain_error(engine, &branch, err).await,
                None => fenced(),
            };
            match batch_wide_copies(&err, batch.len()) {
                // The batch's branch, the store or the lease: every member's own answer is
                // this one (and none may be retried, when the publish may have landed).
                Some(copies) => {
                    for (pending, copy) in batch.into_iter().zip(copies) {
                        let _ = pending.reply.send(Err(copy));
                    }
                    None
                }
                // A failure of the store or the engine itself may come after the commit: if the
                // branch has a commit since this publish began, it landed (writes of the graph
                // are this actor's alone), and re-running halves would apply it twice.
                None if err.kind() == ErrorKind::Internal
                    && !nothing_published_since(engine, &branch, publish_began_us).await =>
                {
                    for pending in batch {
                        let _ = pending.reply.send(Err(maybe_applied(&err)));
                    }
                    None
                }
                // Anything else may be one member's doing (nothing was published): split
                // until each write runs alone and gets its own answer.
                None => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    Some((first, second))
                }
            }
        }
    }
}

/// Whether `branch` has no commit created at or after `since_us` (microseconds since the Unix
/// epoch). Only asked on the error path; an error asking counts as "maybe published".
async fn nothing_published_since(engine: &Omnigraph, branch: &str, since_us: i64) -> bool {
    let listed = if branch == branches::MAIN {
        engine.list_commits(None).await
    } else {
        engine.list_commits(Some(branch)).await
    };
    match listed {
        Ok(commits) => commits.iter().all(|commit| commit.created_at < since_us),
        Err(_) => false,
    }
}

/// `work` (a write on the engine), cut short with `OutcomeUnknown` once the writer lease's
/// fence is passed: it may have landed or not, and another node may write the graph now.
async fn under_fence<T>(
    fence: &mut Fence,
    work: impl Future<Output = Result<T, RepoError>>,
) -> Result<T, RepoError> {
    fence.run(work).await.unwrap_or_else(|| Err(fenced()))
}

fn fenced() -> RepoError {
    RepoError::OutcomeUnknown {
        message: "this node's writer lease ran out (it could not be renewed in time) while the \
                  write was being published, so the publish was cancelled; the write may or may \
                  not have been applied, check its effect before retrying"
            .into(),
    }
}

/// How a batch is published: one load of all its records, or one generated mutation.
enum Publication {
    Load { data: String, mode: LoadMode },
    Mutation { source: String, params: ParamMap },
}

/// Runs `attempt`, and again after a refresh when it lost a race to another writer, at most
/// `CONFLICT_RETRIES` more times. Inserts and append/merge loads do not depend on what they
/// read, so re-running them is safe.
async fn retrying_lost_races<'a>(
    engine: &Omnigraph,
    metrics: &CoalescerMetrics,
    mut attempt: impl FnMut() -> BoxFuture<'a, Result<(), OmniError>>,
) -> Result<(), OmniError> {
    let mut outcome = attempt().await;
    for _ in 0..CONFLICT_RETRIES {
        match &outcome {
            Err(err) if is_lost_race(err) => {
                metrics.retries.inc();
                if let Err(refresh) = engine.refresh().await {
                    warn!(error = %refresh, "refresh before retrying a coalesced publish failed");
                }
                outcome = attempt().await;
            }
            _ => break,
        }
    }
    outcome
}

/// What a member of a published batch would have got alone.
fn own_outcome(pending: &Pending, branch: &str) -> WriteOutcome {
    if let Some(load) = &pending.load {
        return WriteOutcome::Loaded(LoadResult {
            branch: branch.to_string(),
            base_branch: None,
            branch_created: false,
            nodes_loaded: load.nodes.clone(),
            edges_loaded: load.edges.clone(),
        });
    }
    let (affected_nodes, affected_edges) = plan_counts(pending);
    WriteOutcome::Mutated(MutationResult {
        affected_nodes,
        affected_edges,
    })
}

/// The records of a batch of loads, as one load.
fn concatenated_load(batch: &[Pending]) -> (LoadMode, String) {
    let mut mode = LoadMode::Merge;
    let mut data = String::new();
    for pending in batch {
        if let WriteOp::Load {
            data: own,
            mode: own_mode,
            ..
        } = &pending.op
        {
            mode = *own_mode;
            data.push_str(own);
            data.push('\n');
        }
    }
    (mode, data)
}

/// A write that failed because the store became unreachable may still have committed (the
/// connection can break after the conditional PUT landed): its caller is told the outcome is
/// unknown, so that it checks before retrying, rather than invited to retry blindly.
fn unacknowledged(err: RepoError) -> RepoError {
    match err.kind() {
        ErrorKind::Unavailable => maybe_applied(&err),
        _ => err,
    }
}

/// `OutcomeUnknown` for a write that failed with `cause` after it may have landed.
fn maybe_applied(cause: &dyn std::fmt::Display) -> RepoError {
    RepoError::OutcomeUnknown {
        message: format!(
            "{cause}; the write may or may not have been applied, check its effect before retrying"
        ),
    }
}

/// `count` copies of a batch's error when it is the answer of every member alike: the
/// batch's branch is missing, the store failed mid-publish (the outcome is unknown: the
/// publish may have landed, so no half is retried), or the node may not write or queue.
/// `None` when the failure may be one member's doing.
fn batch_wide_copies(err: &RepoError, count: usize) -> Option<Vec<RepoError>> {
    let copy = || -> Option<RepoError> {
        Some(match err {
            RepoError::BranchNotFound { branch, hint } => RepoError::BranchNotFound {
                branch: branch.clone(),
                hint,
            },
            RepoError::NotWriter {
                graph,
                holder,
                epoch,
                expires_in_ms,
            } => RepoError::NotWriter {
                graph: graph.clone(),
                holder: holder.clone(),
                epoch: *epoch,
                expires_in_ms: *expires_in_ms,
            },
            RepoError::Overloaded { message } => RepoError::Overloaded {
                message: message.clone(),
            },
            RepoError::OutcomeUnknown { message } => RepoError::OutcomeUnknown {
                message: message.clone(),
            },
            _ if err.kind() == ErrorKind::Unavailable => maybe_applied(err),
            _ => return None,
        })
    };
    (0..count).map(|_| copy()).collect()
}

fn is_lost_race(err: &OmniError) -> bool {
    matches!(err, OmniError::Manifest(manifest) if manifest.kind == omnigraph::error::ManifestErrorKind::Conflict
        && manifest.details.is_some())
}

/// Writes share a publish only with writes of the same kind, branch and actor (a commit
/// records one actor), and loads only with loads of the same mode.
fn batch_key(op: &WriteOp) -> (String, String, Option<String>) {
    match op {
        WriteOp::Mutate { branch, actor, .. } => ("mutate".into(), branch.clone(), actor.clone()),
        WriteOp::Load {
            branch,
            mode,
            actor,
            ..
        } => (
            format!("load:{}", mode.as_str()),
            branch.clone(),
            actor.clone(),
        ),
        _ => (String::new(), String::new(), None),
    }
}

fn plan_counts(pending: &Pending) -> (usize, usize) {
    pending
        .plan
        .as_ref()
        .map(|plan| (plan.nodes, plan.edges))
        .unwrap_or_default()
}

fn op_bytes(op: &WriteOp) -> usize {
    match op {
        WriteOp::Mutate { source, params, .. } => source.len() + params.len() * 32,
        WriteOp::Load { data, .. } => data.len(),
        WriteOp::ApplySchema { source, .. } => source.len(),
        _ => 256,
    }
}

/// Reads an append or merge load to the existing branch (no `from`) and decides whether it can
/// share a publish: every record of a known type, no node key twice within it.
fn load_plan(op: &WriteOp, catalog: &Catalog) -> Option<LoadPlan> {
    let WriteOp::Load {
        data,
        from: None,
        mode: LoadMode::Append | LoadMode::Merge,
        ..
    } = op
    else {
        return None;
    };
    let mut plan = LoadPlan {
        nodes: HashMap::new(),
        edges: HashMap::new(),
        keys: std::collections::HashSet::new(),
    };
    for record in serde_json::Deserializer::from_str(data).into_iter::<serde_json::Value>() {
        let record = record.ok()?;
        if let Some(type_name) = record.get("type").and_then(|t| t.as_str()) {
            let node_type = catalog.node_types.get(type_name)?;
            if let Some(key) = node_type.key_property() {
                let value = record.get("data")?.get(key)?.to_string();
                if !plan.keys.insert((type_name.to_string(), value)) {
                    return None;
                }
            }
            *plan.nodes.entry(type_name.to_string()).or_default() += 1;
        } else if let Some(edge) = record.get("edge").and_then(|e| e.as_str()) {
            let canonical = match catalog.edge_types.get_key_value(edge) {
                Some((name, _)) => name.clone(),
                None => catalog.edge_name_index.get(&edge.to_lowercase())?.clone(),
            };
            *plan.edges.entry(canonical).or_default() += 1;
        } else {
            return None;
        }
    }
    Some(plan)
}

/// Parses a mutation and decides whether it can share a publish: every statement an insert
/// of a known type whose values are parameters or `now()`.
fn insert_plan(op: &WriteOp, catalog: &Catalog) -> Option<InsertPlan> {
    let WriteOp::Mutate {
        source,
        name,
        params,
        ..
    } = op
    else {
        return None;
    };
    let decl = parse_query(source)
        .ok()?
        .queries
        .into_iter()
        .find(|query| &query.name == name)?;
    if decl.mutations.is_empty() || !decl.match_clause.is_empty() {
        return None;
    }
    // Only writes the engine would accept share a publish: a batch published as a load
    // would not type-check them (the loader nulls a value of the wrong type).
    typecheck_query_decl(catalog, &decl).ok()?;
    // A missing value must fail as the engine fails it, not become a null in a batch.
    let complete = decl
        .params
        .iter()
        .all(|param| param.nullable || params.contains_key(&param.name));
    if !complete {
        return None;
    }
    let (mut nodes, mut edges) = (0, 0);
    for mutation in &decl.mutations {
        let Mutation::Insert(insert) = mutation else {
            return None;
        };
        let literal = insert
            .assignments
            .iter()
            .any(|a| matches!(a.value, MatchValue::Literal(_)));
        if literal {
            return None;
        }
        if catalog.node_types.contains_key(&insert.type_name) {
            nodes += 1;
        } else if catalog.edge_types.contains_key(&insert.type_name)
            || catalog
                .edge_name_index
                .contains_key(&insert.type_name.to_lowercase())
        {
            edges += 1;
        } else {
            return None; // unknown type: let it run alone and fail with its own error
        }
    }
    Some(InsertPlan { decl, nodes, edges })
}

/// The batch as one NDJSON load, when every statement is a node insert with parameter values
/// only and no node key appears twice (a load would fold those into one row, where separate
/// inserts apply one after the other).
fn node_load(batch: &[Pending], catalog: &Catalog) -> Option<String> {
    let mut keys = std::collections::HashSet::new();
    let mut ndjson = String::new();
    for pending in batch {
        let (Some(plan), WriteOp::Mutate { params, .. }) = (&pending.plan, &pending.op) else {
            return None;
        };
        for mutation in &plan.decl.mutations {
            let Mutation::Insert(insert) = mutation else {
                return None;
            };
            let node_type = catalog.node_types.get(&insert.type_name)?;
            let mut data = serde_json::Map::new();
            for assignment in &insert.assignments {
                let MatchValue::Variable(variable) = &assignment.value else {
                    return None;
                };
                let value = literal_json(params.get(variable).unwrap_or(&Literal::Null))?;
                data.insert(assignment.property.clone(), value);
            }
            if let Some(key) = node_type.key_property() {
                // The loader keys nodes by string; other key types stay on the mutation path.
                let value = data.get(key)?.as_str()?.to_string();
                if !keys.insert((insert.type_name.clone(), value)) {
                    return None;
                }
            }
            let record = serde_json::json!({"type": insert.type_name, "data": data});
            ndjson.push_str(&record.to_string());
            ndjson.push('\n');
        }
    }
    Some(ndjson)
}

fn literal_json(literal: &Literal) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match literal {
        Literal::Null => Value::Null,
        Literal::String(text) | Literal::Date(text) | Literal::DateTime(text) => {
            Value::String(text.clone())
        }
        Literal::Integer(number) => Value::from(*number),
        Literal::Float(number) => Value::from(serde_json::Number::from_f64(*number)?),
        Literal::Bool(flag) => Value::Bool(*flag),
        Literal::List(items) => {
            Value::Array(items.iter().map(literal_json).collect::<Option<_>>()?)
        }
    })
}

/// One mutation holding every statement of the batch, with parameters renamed per request.
fn combine(batch: &[Pending]) -> (String, ParamMap) {
    let mut declarations = Vec::new();
    let mut statements = Vec::new();
    let mut params: ParamMap = HashMap::new();
    for (index, pending) in batch.iter().enumerate() {
        let (Some(plan), WriteOp::Mutate { params: own, .. }) = (&pending.plan, &pending.op) else {
            continue;
        };
        let rename = |name: &str| format!("r{index}_{name}");
        for param in &plan.decl.params {
            let optional = if param.nullable { "?" } else { "" };
            declarations.push(format!(
                "${}: {}{optional}",
                rename(&param.name),
                param.type_name
            ));
            let value = own.get(&param.name).cloned().unwrap_or(Literal::Null);
            params.insert(rename(&param.name), value);
        }
        for mutation in &plan.decl.mutations {
            let Mutation::Insert(insert) = mutation else {
                continue;
            };
            let assignments: Vec<String> = insert
                .assignments
                .iter()
                .map(|assignment| match &assignment.value {
                    MatchValue::Variable(variable) => {
                        format!("{}: ${}", assignment.property, rename(variable))
                    }
                    MatchValue::Now => format!("{}: now()", assignment.property),
                    MatchValue::Literal(_) => unreachable!("plans never hold literal values"),
                })
                .collect();
            statements.push(format!(
                "    insert {} {{ {} }}",
                insert.type_name,
                assignments.join(", ")
            ));
        }
    }
    let source = format!(
        "query {COMBINED_QUERY_NAME}({}) {{\n{}\n}}\n",
        declarations.join(", "),
        statements.join("\n")
    );
    (source, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnigraph_compiler::build_catalog;
    use omnigraph_compiler::schema::parser::parse_schema;

    /// Finding 9: only invalid-input and conflict failures were split; any other failure of a
    /// batch went to every caller, mostly as a 500. Now only failures that are every member's
    /// own answer alike are shared; everything else is split down to each write.
    #[test]
    fn only_batch_wide_failures_are_shared() {
        let graph = omnigraph_cloud_config::GraphId::new("g").unwrap();
        let shared = [
            RepoError::BranchNotFound {
                branch: "b".into(),
                hint: "",
            },
            RepoError::NotWriter {
                graph,
                holder: "n".into(),
                epoch: 1,
                expires_in_ms: 5,
            },
            RepoError::Overloaded {
                message: "full".into(),
            },
            RepoError::Unavailable {
                message: "store down".into(),
            },
        ];
        for err in &shared {
            let copies = batch_wide_copies(err, 3).expect("shared");
            assert_eq!(copies.len(), 3);
            assert!(copies.iter().all(|copy| copy.kind() == err.kind()
                || (err.kind() == ErrorKind::Unavailable
                    && copy.kind() == ErrorKind::OutcomeUnknown)));
        }
        let split = [
            RepoError::Internal {
                message: "bug".into(),
            },
            RepoError::Engine(OmniError::Lance("Corrupt file".into())),
            RepoError::Engine(OmniError::manifest_not_found("row")),
            RepoError::Invalid {
                message: "bad".into(),
            },
            RepoError::Conflict {
                message: "race".into(),
            },
        ];
        for err in &split {
            assert!(batch_wide_copies(err, 3).is_none(), "{err}");
        }
    }

    const SCHEMA: &str =
        "node Person { name: String @key\n age: I32? }\nedge Knows: Person -> Person";
    const INSERT: &str =
        "query ins($name: String, $age: I32?) { insert Person { name: $name, age: $age } }";

    fn catalog() -> Catalog {
        build_catalog(&parse_schema(SCHEMA).unwrap()).unwrap()
    }

    fn mutate(source: &str, name: &str, branch: &str, params: &[(&str, Literal)]) -> WriteOp {
        WriteOp::Mutate {
            branch: branch.into(),
            source: source.into(),
            name: name.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            actor: Some("a".into()),
        }
    }

    /// The required parameter of `INSERT`.
    fn named() -> [(&'static str, Literal); 1] {
        [("name", Literal::String("n".into()))]
    }

    fn coalescer(max_batch_writes: usize) -> Coalescer {
        let settings = WriteConfig {
            coalesce: true,
            max_batch_writes,
            max_batch_bytes: 1 << 20,
            max_queue: 16,
            max_wait: std::time::Duration::ZERO,
            tenants: Default::default(),
        };
        Coalescer::new(settings, CoalescerMetrics::unregistered())
    }

    /// A reply port whose caller is still waiting (the receiver is kept alive).
    fn port() -> Reply {
        let (port, receiver) = tokio::sync::oneshot::channel();
        std::mem::forget(receiver);
        port.into()
    }

    #[test]
    fn plans_only_parameterised_inserts_of_known_types() {
        let catalog = catalog();
        let plan = insert_plan(&mutate(INSERT, "ins", "main", &named()), &catalog).unwrap();
        assert_eq!((plan.nodes, plan.edges), (1, 0));
        let edge = "query e($a: String, $b: String) { insert Knows { from: $a, to: $b } }";
        let ends = [
            ("a", Literal::String("x".into())),
            ("b", Literal::String("y".into())),
        ];
        let plan = insert_plan(&mutate(edge, "e", "main", &ends), &catalog).unwrap();
        assert_eq!((plan.nodes, plan.edges), (0, 1));
        for (source, name) in [
            (
                "query u($n: String) { update Person set { age: 1 } where name = $n }",
                "u",
            ),
            ("query l() { insert Person { name: \"x\" } }", "l"),
            ("query z($n: String) { insert Nope { name: $n } }", "z"),
            // Would not type-check: must run alone and get the engine's 400.
            (
                "query t($n: String, $a: String) { insert Person { name: $n, age: $a } }",
                "t",
            ),
            (
                "query p($n: String, $x: String) { insert Person { name: $n, nick: $x } }",
                "p",
            ),
        ] {
            assert!(
                insert_plan(&mutate(source, name, "main", &[]), &catalog).is_none(),
                "{source}"
            );
        }
    }

    #[test]
    fn combined_source_parses_with_renamed_parameters() {
        let catalog = catalog();
        let mut coalescer = coalescer(8);
        for (i, branch) in ["main", "main", "feature", "main"].iter().enumerate() {
            let params = [
                ("name", Literal::String(format!("p{i}"))),
                ("age", Literal::Integer(i as i64)),
            ];
            coalescer.push(mutate(INSERT, "ins", branch, &params), port(), &catalog);
        }
        let Some(Unit::Batch(batch)) = coalescer.next_unit() else {
            panic!("a batch")
        };
        assert_eq!(
            batch.len(),
            3,
            "the feature-branch write does not join main's batch"
        );
        let (source, params) = combine(&batch);
        let decl = parse_query(&source).unwrap().queries.remove(0);
        assert_eq!(decl.mutations.len(), 3);
        assert_eq!(decl.params.len(), 6);
        assert!(matches!(&params["r2_name"], Literal::String(name) if name == "p3"));
        let Some(Unit::Batch(rest)) = coalescer.next_unit() else {
            panic!("a batch")
        };
        assert_eq!(rest.len(), 1);
        assert!(coalescer.is_empty());
    }

    #[test]
    fn node_insert_batches_become_one_load_unless_a_key_repeats() {
        let catalog = catalog();
        let mut coalescer = coalescer(8);
        for name in ["a", "b"] {
            let params = [
                ("name", Literal::String(name.into())),
                ("age", Literal::Integer(3)),
            ];
            coalescer.push(mutate(INSERT, "ins", "main", &params), port(), &catalog);
        }
        let Some(Unit::Batch(batch)) = coalescer.next_unit() else {
            panic!("a batch")
        };
        let ndjson = node_load(&batch, &catalog).unwrap();
        let records: Vec<serde_json::Value> = ndjson
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            records,
            [
                serde_json::json!({"type": "Person", "data": {"name": "a", "age": 3}}),
                serde_json::json!({"type": "Person", "data": {"name": "b", "age": 3}}),
            ]
        );
        for _ in 0..2 {
            let params = [
                ("name", Literal::String("same".into())),
                ("age", Literal::Integer(1)),
            ];
            coalescer.push(mutate(INSERT, "ins", "main", &params), port(), &catalog);
        }
        let Some(Unit::Batch(batch)) = coalescer.next_unit() else {
            panic!("a batch")
        };
        assert!(
            node_load(&batch, &catalog).is_none(),
            "a repeated key stays a mutation"
        );
    }

    fn load(data: &str, mode: LoadMode, from: Option<&str>) -> WriteOp {
        WriteOp::Load {
            branch: "main".into(),
            from: from.map(str::to_string),
            data: data.into(),
            mode,
            actor: None,
        }
    }

    #[test]
    fn plans_loads_with_their_own_counts_and_keys() {
        let catalog = catalog();
        let data = "{\"type\":\"Person\",\"data\":{\"name\":\"a\"}}\n\
                    {\"type\": \"Person\", \"data\": {\"name\": \"b\"}}\n\
                    {\"edge\":\"knows\",\"from\":\"a\",\"to\":\"b\"}";
        let plan = load_plan(&load(data, LoadMode::Merge, None), &catalog).unwrap();
        assert_eq!(plan.nodes["Person"], 2);
        assert_eq!(
            plan.edges["Knows"], 1,
            "edge names resolve case-insensitively"
        );
        assert_eq!(plan.keys.len(), 2);
        let duplicate = "{\"type\":\"Person\",\"data\":{\"name\":\"a\"}}\n{\"type\":\"Person\",\"data\":{\"name\":\"a\"}}";
        for op in [
            load(data, LoadMode::Overwrite, None),
            load(data, LoadMode::Merge, Some("main")),
            load("{\"type\":\"Nope\",\"data\":{}}", LoadMode::Merge, None),
            load("not json", LoadMode::Append, None),
            load(duplicate, LoadMode::Merge, None),
        ] {
            assert!(load_plan(&op, &catalog).is_none(), "{op:?}");
        }
    }

    #[test]
    fn writes_of_callers_that_went_away_are_not_applied() {
        let catalog = catalog();
        let mut coalescer = coalescer(8);
        let (gone, receiver) = tokio::sync::oneshot::channel();
        drop(receiver);
        coalescer.push(
            mutate(INSERT, "ins", "main", &named()),
            gone.into(),
            &catalog,
        );
        coalescer.push(mutate(INSERT, "ins", "main", &named()), port(), &catalog);
        assert!(matches!(coalescer.next_unit(), Some(Unit::Batch(b)) if b.len() == 1));
        assert!(coalescer.next_unit().is_none());
    }

    #[test]
    fn exclusive_writes_keep_their_place_and_the_queue_is_bounded() {
        let catalog = catalog();
        let mut coalescer = coalescer(8);
        let update = "query u($n: String) { update Person set { age: 1 } where name = $n }";
        coalescer.push(mutate(INSERT, "ins", "main", &named()), port(), &catalog);
        coalescer.push(mutate(update, "u", "main", &[]), port(), &catalog);
        coalescer.push(mutate(INSERT, "ins", "main", &named()), port(), &catalog);
        assert!(matches!(coalescer.next_unit(), Some(Unit::Batch(b)) if b.len() == 1));
        assert!(matches!(coalescer.next_unit(), Some(Unit::Alone(_))));
        assert!(matches!(coalescer.next_unit(), Some(Unit::Batch(b)) if b.len() == 1));

        for _ in 0..16 {
            coalescer.push(mutate(INSERT, "ins", "main", &named()), port(), &catalog);
        }
        let (reply, refused) = tokio::sync::oneshot::channel();
        coalescer.push(
            mutate(INSERT, "ins", "main", &named()),
            reply.into(),
            &catalog,
        );
        let answer = refused.blocking_recv().unwrap();
        assert!(matches!(answer, Err(RepoError::Overloaded { .. })));
        assert!(
            matches!(coalescer.next_unit(), Some(Unit::Batch(b)) if b.len() == 8),
            "bounded by max_batch_writes"
        );
    }
}
