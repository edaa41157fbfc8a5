//! `RepoActor`: owns the warm engine handle of one repo and applies its writes in order.

use std::sync::Arc;

use omnigraph::db::Omnigraph;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::debug;

use super::messages::RepoMsg;
use super::{Incarnation, Life, RepoShared, writes};

pub(crate) struct RepoActor;

pub(crate) struct RepoActorState {
    shared: Arc<RepoShared>,
    engine: Arc<Omnigraph>,
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
        Ok(RepoActorState { shared, engine })
    }

    async fn handle(
        &self,
        _myself: ActorRef<RepoMsg>,
        message: RepoMsg,
        state: &mut RepoActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RepoMsg::Write(op, reply) => {
                let kind = op.kind();
                let result = writes::execute(&state.engine, op).await;
                if let Err(err) = &result {
                    debug!(repo = %state.shared.key, kind, error = %err, "write refused");
                }
                // The caller may have given up (timeout); its write is applied regardless.
                let _ = reply.send(result);
            }
            RepoMsg::Crash => panic!(
                "fault injected: repo actor for {} crashed",
                state.shared.key
            ),
        }
        Ok(())
    }
}
