//! The queue of a repo's writes and what the next publish takes from it: shared publishes
//! for writes that can share one, exclusive writes alone and in arrival order.

use std::collections::VecDeque;

use omnigraph_cloud_config::WriteConfig;
use omnigraph_compiler::catalog::Catalog;
use ractor::RpcReplyPort;
use tracing::debug;

use super::plan::{InsertPlan, LoadPlan, insert_plan, load_plan};
use crate::RepoError;
use crate::metrics::CoalescerMetrics;
use crate::repo::messages::{WriteOp, Written};

pub(crate) type Reply = RpcReplyPort<Result<Written, RepoError>>;

/// A queued write.
pub(crate) struct Pending {
    pub(super) op: WriteOp,
    pub(super) reply: Reply,
    /// Set when the write can share a publish with others.
    pub(super) plan: Option<InsertPlan>,
    /// Set when the write is a load that can share a publish with other loads.
    pub(super) load: Option<LoadPlan>,
    pub(super) bytes: usize,
    /// Forwarded here by another node (`crate::origin`).
    pub(super) forwarded: bool,
}

impl Pending {
    pub(super) fn shares(&self) -> bool {
        self.plan.is_some() || self.load.is_some()
    }
}

/// What the next publish will be.
pub(crate) enum Unit {
    Alone(Box<Pending>),
    Batch(Vec<Pending>),
}

impl Unit {
    /// Whether every write the engine makes for this unit passes through the cache tier:
    /// batched mutations (inserts) do; loads, which may create a branch, and the writes that
    /// run alone may open datasets around it (`cache::RepoCache::mutation`).
    pub(crate) fn seen_by_the_cache(&self) -> bool {
        match self {
            Unit::Alone(_) => false,
            Unit::Batch(batch) => batch
                .iter()
                .all(|pending| matches!(pending.op, WriteOp::Mutate { .. })),
        }
    }

    /// Whether another node forwarded any of the unit's writes here.
    pub(crate) fn forwarded(&self) -> bool {
        match self {
            Unit::Alone(pending) => pending.forwarded,
            Unit::Batch(batch) => batch.iter().any(|pending| pending.forwarded),
        }
    }

    /// How many writes the unit holds.
    pub(crate) fn len(&self) -> usize {
        match self {
            Unit::Alone(_) => 1,
            Unit::Batch(batch) => batch.len(),
        }
    }

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
    pub(super) queue: VecDeque<Pending>,
    /// Request bytes of the queued writes.
    pub(super) queued_bytes: usize,
    pub(super) settings: WriteConfig,
    pub(super) metrics: CoalescerMetrics,
}

impl Coalescer {
    pub(crate) fn new(settings: WriteConfig, metrics: CoalescerMetrics) -> Coalescer {
        Coalescer {
            queue: VecDeque::new(),
            queued_bytes: 0,
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
    pub(super) fn drop_abandoned(&mut self) {
        let queued = self.queue.len();
        self.queue.retain(|pending| !pending.reply.is_closed());
        let abandoned = queued - self.queue.len();
        if abandoned > 0 {
            self.metrics.queue_depth.dec_by(abandoned as i64);
            let bytes: usize = self.queue.iter().map(|pending| pending.bytes).sum();
            self.unqueue_bytes(self.queued_bytes - bytes);
            debug!(abandoned, "dropped queued writes whose callers went away");
        }
    }

    /// Queues a write made on this node (the tests' shorthand).
    #[cfg(test)]
    pub(crate) fn push(&mut self, op: WriteOp, reply: Reply, catalog: &Catalog) {
        self.push_from(op, reply, catalog, false);
    }

    /// Queues a write; `forwarded` when another node forwarded it here.
    pub(crate) fn push_from(
        &mut self,
        op: WriteOp,
        reply: Reply,
        catalog: &Catalog,
        forwarded: bool,
    ) {
        let bytes = op_bytes(&op);
        if self.full(bytes) {
            self.drop_abandoned();
        }
        if self.full(bytes) {
            self.metrics.rejected.inc();
            let message = if self.queue.len() >= self.settings.max_queue {
                format!(
                    "too many writes queued for this graph (writes.max_queue = {}); retry later",
                    self.settings.max_queue
                )
            } else {
                format!(
                    "the writes queued for this graph hold {} bytes, and this one's {} would \
                     pass writes.max_queue_bytes = {}; retry later",
                    self.queued_bytes, bytes, self.settings.max_queue_bytes
                )
            };
            let _ = reply.send(Err(RepoError::Overloaded { message }));
            return;
        }
        let (plan, load) = match self.settings.coalesce {
            true => (insert_plan(&op, catalog), load_plan(&op, catalog)),
            false => (None, None),
        };
        self.queued_bytes += bytes;
        self.metrics.queue_bytes.inc_by(bytes as i64);
        self.queue.push_back(Pending {
            op,
            reply,
            plan,
            load,
            bytes,
            forwarded,
        });
        self.metrics.queue_depth.inc();
    }

    /// Whether a write of `bytes` finds the queue full: by count, or by bytes. A write alone
    /// is always taken (the body limit bounds it), so that no write is refused forever.
    fn full(&self, bytes: usize) -> bool {
        self.queue.len() >= self.settings.max_queue
            || (!self.queue.is_empty() && self.queued_bytes + bytes > self.settings.max_queue_bytes)
    }

    fn unqueue_bytes(&mut self, bytes: usize) {
        self.queued_bytes -= bytes;
        self.metrics.queue_bytes.dec_by(bytes as i64);
    }

    /// Takes the next unit of work: the head of the queue alone, or the head and every later
    /// write that can share its publish, up to the first exclusive write and the batch bounds.
    pub(crate) fn next_unit(&mut self) -> Option<Unit> {
        self.drop_abandoned();
        let head = self.queue.pop_front()?;
        self.metrics.queue_depth.dec();
        self.unqueue_bytes(head.bytes);
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
                self.unqueue_bytes(taken.bytes);
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
        self.metrics.queue_bytes.dec_by(self.queued_bytes as i64);
    }
}

/// Writes share a publish only with writes of the same kind, branch and actor (a commit
/// records one actor), and loads only with loads of the same mode.
pub(super) fn batch_key(op: &WriteOp) -> (String, String, Option<String>) {
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

pub(super) fn plan_counts(pending: &Pending) -> (usize, usize) {
    pending
        .plan
        .as_ref()
        .map(|plan| (plan.nodes, plan.edges))
        .unwrap_or_default()
}

pub(super) fn op_bytes(op: &WriteOp) -> usize {
    match op {
        WriteOp::Mutate { source, params, .. } => source.len() + params.len() * 32,
        WriteOp::Load { data, .. } => data.len(),
        WriteOp::ApplySchema { source, .. } => source.len(),
        _ => 256,
    }
}
