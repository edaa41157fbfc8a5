//! `RepoSupervisor`: keeps one repo's `RepoActor` alive and decides when the repo goes cold.
//!
//! - A failed actor (panic or error) is replaced by a new one with a fresh engine handle. If
//!   the replacement cannot open the graph, the repo is stopped with the reason, and the next
//!   request activates it anew through the registry.
//! - An idle check re-arms itself every `idle_timeout / 4` (at least 50 ms, at most 30 s);
//!   when the activity gate closes (nothing in flight, idle long enough) the repo is evicted.
//! - On stop, for whatever reason, `on_stop` runs once: the registry forgets the repo.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info, warn};

use super::actor::RepoActor;
use super::maintenance_actors::{
    CompactionActor, CompactionMsg, MaintenanceActors, MaintenanceArgs, RecoveryActor, RecoveryMsg,
};
use super::messages::RepoMsg;
use super::{Life, RepoShared};
use crate::maintenance::Scheduler;
use crate::metrics::ActorMetrics;

pub(crate) struct RepoSupervisor;

pub(crate) enum SupervisorMsg {
    /// Evicts the repo if it has been idle for `idle_timeout`, else re-arms.
    IdleCheck,
    /// Makes the current actor panic (fault injection, `test-seams` builds only).
    #[cfg(feature = "test-seams")]
    CrashChild,
}

pub(crate) struct SupervisorArgs {
    pub(crate) shared: Arc<RepoShared>,
    pub(crate) idle_timeout: Duration,
    pub(crate) metrics: ActorMetrics,
    pub(crate) on_stop: Box<dyn FnOnce() + Send>,
}

pub(crate) struct SupervisorState {
    shared: Arc<RepoShared>,
    idle_timeout: Duration,
    metrics: ActorMetrics,
    on_stop: Option<Box<dyn FnOnce() + Send>>,
    child: Option<ActorRef<RepoMsg>>,
    /// The maintenance siblings, on a worker node.
    recovery: Option<ActorRef<RecoveryMsg>>,
    compaction: Option<ActorRef<CompactionMsg>>,
}

impl Actor for RepoSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let (child, _) =
            Actor::spawn_linked(None, RepoActor, Arc::clone(&args.shared), myself.get_cell())
                .await?;
        arm_idle_check(&myself, args.idle_timeout);
        let mut state = SupervisorState {
            shared: args.shared,
            idle_timeout: args.idle_timeout,
            metrics: args.metrics,
            on_stop: Some(args.on_stop),
            child: Some(child),
            recovery: None,
            compaction: None,
        };
        if state.shared.maintenance.settings.enabled {
            state.recovery = Some(spawn_recovery(&myself, &state.shared).await?);
            state.compaction = Some(spawn_compaction(&myself, &state.shared).await?);
            state.publish_maintenance_actors();
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::IdleCheck => {
                if state.shared.activity.close_if_idle(state.idle_timeout) {
                    info!(repo = %state.shared.key, "evicting idle repo");
                    state.metrics.evictions.inc();
                    myself.stop(Some("idle".into()));
                } else {
                    arm_idle_check(&myself, state.idle_timeout);
                }
            }
            #[cfg(feature = "test-seams")]
            SupervisorMsg::CrashChild => {
                if let Some(child) = &state.child {
                    let _ = child.cast(RepoMsg::Crash);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, reason) = event else {
            return Ok(());
        };
        // A failed maintenance actor is replaced; the repo keeps serving meanwhile.
        if state
            .recovery
            .as_ref()
            .is_some_and(|a| a.get_id() == cell.get_id())
        {
            warn!(repo = %state.shared.key, %reason, "recovery actor failed; restarting it");
            state.recovery = spawn_recovery(&myself, &state.shared).await.ok();
            state.publish_maintenance_actors();
            return Ok(());
        }
        if state
            .compaction
            .as_ref()
            .is_some_and(|a| a.get_id() == cell.get_id())
        {
            warn!(repo = %state.shared.key, %reason, "compaction actor failed; restarting it");
            state.compaction = spawn_compaction(&myself, &state.shared).await.ok();
            state.publish_maintenance_actors();
            return Ok(());
        }
        let is_current_child = state
            .child
            .as_ref()
            .is_some_and(|child| child.get_id() == cell.get_id());
        if !is_current_child {
            return Ok(());
        }
        warn!(repo = %state.shared.key, %reason, "repo actor failed; restarting with a fresh engine handle");
        state.metrics.restarts.inc();
        state.shared.life.send_replace(Life::Restarting);
        match Actor::spawn_linked(
            None,
            RepoActor,
            Arc::clone(&state.shared),
            myself.get_cell(),
        )
        .await
        {
            Ok((child, _)) => {
                state.child = Some(child);
                // The failed actor may have left a write half-done.
                state.shared.maintenance.check_recovery();
            }
            Err(err) => {
                error!(repo = %state.shared.key, error = %err, "repo actor could not be restarted");
                state.child = None;
                state.shared.life.send_replace(Life::Stopped(format!(
                    "graph '{}' failed and could not be reopened: {err}",
                    state.shared.key.graph
                )));
                myself.stop(Some("restart failed".into()));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Maintenance first: a run in progress ends before the repo goes cold.
        *state
            .shared
            .maintenance
            .actors
            .lock()
            .expect("maintenance actors lock") = None;
        if let Some(recovery) = state.recovery.take() {
            let _ = recovery.stop_and_wait(None, None).await;
        }
        if let Some(compaction) = state.compaction.take() {
            let _ = compaction.stop_and_wait(None, None).await;
        }
        if let Some(child) = state.child.take() {
            let _ = child
                .stop_and_wait(None, Some(Duration::from_secs(30)))
                .await;
        }
        state.shared.maintenance.go_cold().await;
        state.shared.life.send_if_modified(|life| {
            if matches!(life, Life::Stopped(_)) {
                return false;
            }
            *life = Life::Stopped(format!("graph '{}' was unloaded", state.shared.key.graph));
            true
        });
        if let Some(on_stop) = state.on_stop.take() {
            on_stop();
        }
        Ok(())
    }
}

impl SupervisorState {
    fn publish_maintenance_actors(&self) {
        let actors = match (&self.recovery, &self.compaction) {
            (Some(recovery), Some(compaction)) => Some(Box::new(MaintenanceActors {
                recovery: recovery.clone(),
                compaction: compaction.clone(),
            }) as Box<dyn Scheduler>),
            _ => None,
        };
        *self
            .shared
            .maintenance
            .actors
            .lock()
            .expect("maintenance actors lock") = actors;
    }
}

async fn spawn_recovery(
    myself: &ActorRef<SupervisorMsg>,
    shared: &Arc<RepoShared>,
) -> Result<ActorRef<RecoveryMsg>, ractor::SpawnErr> {
    let args = MaintenanceArgs {
        shared: Arc::clone(shared),
    };
    Actor::spawn_linked(None, RecoveryActor, args, myself.get_cell())
        .await
        .map(|(actor, _)| actor)
}

async fn spawn_compaction(
    myself: &ActorRef<SupervisorMsg>,
    shared: &Arc<RepoShared>,
) -> Result<ActorRef<CompactionMsg>, ractor::SpawnErr> {
    let args = MaintenanceArgs {
        shared: Arc::clone(shared),
    };
    Actor::spawn_linked(None, CompactionActor, args, myself.get_cell())
        .await
        .map(|(actor, _)| actor)
}

fn arm_idle_check(myself: &ActorRef<SupervisorMsg>, idle_timeout: Duration) {
    let period = (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
    myself.send_after(period, || SupervisorMsg::IdleCheck);
}
