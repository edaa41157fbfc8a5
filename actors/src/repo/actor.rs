//! `RepoActor`: owns the warm engine handle of one repo and its write coalescer.

use std::sync::Arc;

use omnigraph::db::Omnigraph;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use super::coalescer::{self, Coalescer};
use super::messages::RepoMsg;
use super::{Incarnation, Life, RepoShared};

pub(crate) struct RepoActor;

pub(crate) struct RepoActorState {
    shared: Arc<RepoShared>,
    engine: Arc<Omnigraph>,
    coalescer: Coalescer,
    /// A `Flush` is in the mailbox (or armed); at most one at a time.
    flush_scheduled: bool,
}

impl Actor for RepoActor {
    type Msg = RepoMsg;
    type State = RepoActorState;
    type Arguments = Arc<RepoShared>;

    /// Opens the engine (read-write: this runs the engine's recovery sweep) and publishes
    /// the warm handle to callers.
    async fn pre_start(
        &self,
        myself: ActorRef<RepoMsg>,
        shared: Arc<RepoShared>,
    ) -> Result<RepoActorState, ActorProcessingErr> {
        let engine = Arc::new(Omnigraph::open(&shared.uri).await?);
        shared.life.send_replace(Life::Ready(Arc::new(Incarnation {
            engine: Arc::clone(&engine),
            mailbox: myself,
        })));
        debug!(repo = %shared.key, "repo actor started");
        let coalescer = Coalescer::new(shared.writes.clone(), shared.coalescer_metrics.clone());
        Ok(RepoActorState {
            shared,
            engine,
            coalescer,
            flush_scheduled: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RepoMsg>,
        message: RepoMsg,
        state: &mut RepoActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RepoMsg::Write(op, reply) => {
                let catalog = state.engine.catalog();
                state.coalescer.push(op, reply, &catalog);
                schedule_flush(&myself, state);
            }
            RepoMsg::Flush => {
                state.flush_scheduled = false;
                if let Some(unit) = state.coalescer.next_unit() {
                    let schema_changed =
                        coalescer::execute(&state.engine, unit, &state.shared.coalescer_metrics)
                            .await;
                    if schema_changed {
                        let _ = myself.cast(RepoMsg::BuildIndexes);
                    }
                }
                schedule_flush(&myself, state);
            }
            RepoMsg::BuildIndexes => {
                let Some(_in_use) = state.shared.activity.enter() else {
                    return Ok(()); // the repo is closing: these indexes stay unbuilt until the next schema apply
                };
                match state.engine.ensure_indices().await {
                    Ok(built) => {
                        info!(repo = %state.shared.key, indexes = built.len(), "built indexes after schema apply")
                    }
                    Err(err) => {
                        warn!(repo = %state.shared.key, error = %err, "index build after schema apply failed")
                    }
                }
            }
            RepoMsg::Crash => panic!(
                "fault injected: repo actor for {} crashed",
                state.shared.key
            ),
        }
        Ok(())
    }
}

/// Arms one `Flush` if writes are waiting and none is armed. With `max_wait` it waits that
/// long first, to gather more writes; without, it lands behind the writes already queued.
fn schedule_flush(myself: &ActorRef<RepoMsg>, state: &mut RepoActorState) {
    if state.flush_scheduled || state.coalescer.is_empty() {
        return;
    }
    state.flush_scheduled = true;
    let wait = state.shared.writes.max_wait;
    if wait.is_zero() {
        let _ = myself.cast(RepoMsg::Flush);
    } else {
        myself.send_after(wait, || RepoMsg::Flush);
    }
}
