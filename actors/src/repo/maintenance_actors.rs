//! `RecoveryActor` and `CompactionActor`: siblings of a warm repo's `RepoActor` under its
//! supervisor, on nodes with the worker role. Neither enters the repo's activity gate, so
//! neither keeps the repo from being evicted; eviction waits for a run in progress to end.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::debug;

use super::{Life, RepoShared};
use crate::maintenance::{Outcome, RepoMaintenance, Scheduler};

/// A warm repo's maintenance actors, as its maintenance state reaches them.
pub(crate) struct MaintenanceActors {
    pub(crate) recovery: ActorRef<RecoveryMsg>,
    pub(crate) compaction: ActorRef<CompactionMsg>,
}

impl Scheduler for MaintenanceActors {
    fn published(&self, due: bool) {
        let _ = self.compaction.cast(CompactionMsg::Published { due });
    }

    fn check_recovery(&self) {
        let _ = self.recovery.cast(RecoveryMsg::Check);
    }
}

/// How long a run waits for the request path to quiet down before it goes ahead anyway.
const LOAD_DEFERRAL: Duration = Duration::from_secs(1);
const MAX_LOAD_DEFERRALS: u32 = 5;

pub(crate) struct RecoveryActor;

pub(crate) enum RecoveryMsg {
    /// Looks for recovery sidecars and sweeps them if there are any.
    Check,
}

pub(crate) struct MaintenanceArgs {
    pub(crate) shared: Arc<RepoShared>,
}

pub(crate) struct RecoveryState {
    shared: Arc<RepoShared>,
    retry_armed: bool,
}

impl Actor for RecoveryActor {
    type Msg = RecoveryMsg;
    type State = RecoveryState;
    type Arguments = MaintenanceArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RecoveryMsg>,
        args: MaintenanceArgs,
    ) -> Result<RecoveryState, ActorProcessingErr> {
        // Whatever a crashed writer left is swept as soon as the repo is warm.
        let _ = myself.cast(RecoveryMsg::Check);
        Ok(RecoveryState {
            shared: args.shared,
            retry_armed: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RecoveryMsg>,
        RecoveryMsg::Check: RecoveryMsg,
        state: &mut RecoveryState,
    ) -> Result<(), ActorProcessingErr> {
        state.retry_armed = false;
        let maintenance = &state.shared.maintenance;
        let warm = warm_engine(&state.shared);
        let retry_in = match maintenance.recover(warm.as_ref()).await {
            Outcome::Done | Outcome::NotNeeded => None,
            // Typically a dead writer's lease that has not lapsed yet: look again soon.
            Outcome::Deferred(_) | Outcome::WriterElsewhere(_) => Some(
                maintenance
                    .store_lease_timing()
                    .renew_every()
                    .min(maintenance.backoff()),
            ),
            Outcome::Failed(_) => Some(maintenance.backoff()),
        };
        if let Some(delay) = retry_in
            && !state.retry_armed
        {
            state.retry_armed = true;
            myself.send_after(delay, || RecoveryMsg::Check);
        }
        Ok(())
    }
}

pub(crate) struct CompactionActor;

pub(crate) enum CompactionMsg {
    /// A publish happened; `due` when a trigger (versions, bytes) is reached.
    Published { due: bool },
    /// The scheduled check: run if there is a backlog or a table has too many fragments.
    Tick,
    /// A run deferred because the request path was busy.
    Deferred { attempt: u32 },
}

pub(crate) struct CompactionState {
    shared: Arc<RepoShared>,
    tick_armed: bool,
}

impl Actor for CompactionActor {
    type Msg = CompactionMsg;
    type State = CompactionState;
    type Arguments = MaintenanceArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CompactionMsg>,
        args: MaintenanceArgs,
    ) -> Result<CompactionState, ActorProcessingErr> {
        // One look at the repo after it has stayed warm for an interval, for a repo that is
        // fragmented from before (no backlog counted on this node).
        let interval = args.shared.maintenance.settings.config.interval;
        myself.send_after(interval, || CompactionMsg::Tick);
        Ok(CompactionState {
            shared: args.shared,
            tick_armed: true,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<CompactionMsg>,
        message: CompactionMsg,
        state: &mut CompactionState,
    ) -> Result<(), ActorProcessingErr> {
        let maintenance = Arc::clone(&state.shared.maintenance);
        let run = match message {
            CompactionMsg::Published { due: true } => Some(0),
            CompactionMsg::Published { due: false } => None,
            CompactionMsg::Tick => {
                state.tick_armed = false;
                let fragmented = match warm_engine(&state.shared) {
                    Some(engine) if !maintenance.has_backlog() => {
                        max_fragments(&maintenance, &engine).await
                            >= maintenance.settings.config.trigger_fragments
                    }
                    _ => false,
                };
                (maintenance.has_backlog() || fragmented).then_some(0)
            }
            CompactionMsg::Deferred { attempt } => Some(attempt),
        };
        if let Some(attempt) = run {
            if attempt < MAX_LOAD_DEFERRALS && maintenance.busy() {
                debug!(repo = %maintenance.key, attempt, "request path busy; compaction deferred");
                myself.send_after(LOAD_DEFERRAL, move || CompactionMsg::Deferred {
                    attempt: attempt + 1,
                });
                return Ok(());
            }
            let warm = warm_engine(&state.shared);
            if let Outcome::Failed(_) | Outcome::Deferred(_) =
                maintenance.compact(warm.as_ref()).await
            {
                state.tick_armed = true;
                myself.send_after(maintenance.backoff(), || CompactionMsg::Tick);
                return Ok(());
            }
        }
        if maintenance.has_backlog() && !state.tick_armed {
            state.tick_armed = true;
            myself.send_after(maintenance.settings.config.interval, || CompactionMsg::Tick);
        }
        Ok(())
    }
}

/// The repo's serving handle, when its actor is up.
fn warm_engine(shared: &RepoShared) -> Option<Arc<omnigraph::db::Omnigraph>> {
    match &*shared.life.borrow() {
        Life::Ready(incarnation) => Some(Arc::clone(&incarnation.engine)),
        _ => None,
    }
}

async fn max_fragments(maintenance: &RepoMaintenance, engine: &omnigraph::db::Omnigraph) -> u64 {
    match maintenance.inventory(engine).await {
        Ok(tables) => tables.iter().map(|t| t.fragments).max().unwrap_or(0),
        Err(err) => {
            tracing::warn!(repo = %maintenance.key, error = %err, "could not count fragments");
            0
        }
    }
}
