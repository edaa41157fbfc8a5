//! One simulated node: the write path of a repo actor, with our own coalescer, lease holder
//! and placement, over the model engine and the simulated store. Its loop mirrors the actor's
//! flush (`repo::actor`): take the next unit, refuse it if placement gives the graph to
//! another node, hold the writer lease, publish under its fence. Between writes it hands the
//! graph over when placement moved it (`registry::rebalance`). A pause stops the whole loop
//! as SIGSTOP would, timers included, while its lease renewals wait at the store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use omnigraph_cloud_cluster::lease::{LeaseKind, LeaseStore, LeaseTiming};
use omnigraph_cloud_cluster::{Clock, RepoKey, placement};
use omnigraph_cloud_config::{GraphId, TenantId, WriteConfig};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::link::Link;
use super::model::ModelGraph;
use super::world::{World, node_name};
use crate::RepoError;
use crate::maintenance::{Held, LeaseHolder};
use crate::metrics::{CoalescerMetrics, LeaseMetrics};
use crate::repo::WriteOp;
use crate::repo::Written;
use crate::repo::coalescer::{self, Coalescer};

/// How often an idle node checks whether placement moved its graph away.
const HAND_OVER_EVERY: Duration = Duration::from_millis(500);

/// Wall-clock milliseconds at the simulation's start (1 January 2026), skew aside.
const EPOCH_MS: u64 = 1_767_225_600_000;

pub(super) struct Request {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<Written, RepoError>>,
}

/// A running incarnation of a node.
pub(super) struct Booted {
    pub inbox: mpsc::UnboundedSender<Request>,
    task: JoinHandle<()>,
}

impl Booted {
    /// kill -9: the loop and everything it holds are gone at once; requests already sent to
    /// the store still land.
    pub(super) fn crash(self) {
        self.task.abort();
    }
}

/// The one graph the simulation writes.
pub(super) fn key() -> RepoKey {
    RepoKey::new(
        TenantId::new("sim").expect("tenant"),
        GraphId::new("g").expect("graph"),
    )
}

/// Starts incarnation `boot` of `node`, whose wall clock is `skew_ms` off.
pub(super) fn boot(
    world: &Arc<World>,
    node: usize,
    boot: u32,
    timing: LeaseTiming,
    skew_ms: i64,
) -> Booted {
    // The node's clock reads the world's time, off by its skew, whenever it (re)starts.
    let now_ms = EPOCH_MS + world.elapsed_ms();
    let clock = Clock::following_tokio_from(now_ms.saturating_add_signed(skew_ms));
    let link = Link {
        world: Arc::clone(world),
        node,
    };
    let store = LeaseStore::new(Arc::new(link.clone()), Arc::new(()), timing).with_clock(clock);
    let holder = LeaseHolder::new(
        store,
        key(),
        LeaseKind::Writer,
        format!("{}-b{boot}", node_name(node)).into(),
        LeaseMetrics::unregistered(),
    );
    let model = ModelGraph::new(link, clock);
    let (inbox, requests) = mpsc::unbounded_channel();
    let paused = world.paused[node].subscribe();
    let serving = serve(Arc::clone(world), node, holder, model, requests);
    Booted {
        inbox,
        task: tokio::spawn(pausable(paused, serving)),
    }
}

/// Runs `work` except while `paused` says so: then it is not polled at all, so that on
/// resuming it finds its timers and its answers ready together.
async fn pausable<F: Future>(mut paused: watch::Receiver<bool>, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    loop {
        if *paused.borrow_and_update() {
            let _ = paused.wait_for(|paused| !paused).await;
            continue;
        }
        tokio::select! {
            biased;
            _ = paused.changed() => continue,
            output = &mut work => return output,
        }
    }
}

fn write_settings() -> WriteConfig {
    WriteConfig {
        coalesce: true,
        max_batch_writes: 64,
        max_batch_bytes: 1 << 20,
        max_queue: 1024,
        max_queue_bytes: 1 << 24,
        max_wait: Duration::ZERO,
        tenants: Default::default(),
    }
}

async fn serve(
    world: Arc<World>,
    node: usize,
    holder: Arc<LeaseHolder>,
    model: ModelGraph,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let metrics = CoalescerMetrics::unregistered();
    let mut coalescer = Coalescer::new(write_settings(), metrics.clone());
    let mut hand_over = tokio::time::interval(HAND_OVER_EVERY);
    let name = node_name(node);
    loop {
        if coalescer.is_empty() {
            tokio::select! {
                biased;
                request = requests.recv() => match request {
                    Some(Request { op, reply }) => {
                        coalescer.push_from(op, reply.into(), model.catalog_ref(), false);
                    }
                    None => return,
                },
                _ = hand_over.tick() => {
                    if holder.live().is_some() && owner(&world, node) != name {
                        holder.release().await;
                    }
                    continue;
                }
            }
        }
        while let Ok(Request { op, reply }) = requests.try_recv() {
            coalescer.push_from(op, reply.into(), model.catalog_ref(), false);
        }
        let Some(unit) = coalescer.next_unit() else {
            continue;
        };
        let owner = owner(&world, node);
        if owner != name {
            unit.refuse(|| RepoError::PlacedElsewhere {
                graph: key().graph,
                node: owner.clone(),
                address: owner.clone(),
            });
            continue;
        }
        match holder.ensure().await {
            Ok(Held::Ours(epoch)) => {
                model.set_epoch(epoch);
                let mut fence = holder.fence(epoch);
                coalescer::execute(&model, unit, &metrics, &mut fence).await;
            }
            Ok(Held::Other(record)) => unit.refuse(|| RepoError::NotWriter {
                graph: key().graph,
                holder: record.holder.clone(),
                epoch: record.epoch,
                expires_in_ms: 0,
                address: None,
            }),
            Err(err) => unit.refuse(|| {
                RepoError::unavailable(format!("the writer lease could not be checked ({err})"))
            }),
        }
    }
}

/// The placement owner of the graph among the members `node` sees.
fn owner(world: &World, node: usize) -> String {
    let view = world.view_of(node);
    placement::owner(&view, &key())
        .cloned()
        .unwrap_or_else(|| node_name(node))
}
