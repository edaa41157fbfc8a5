//! One node's path to the simulated store. Every request goes the way a real one does: it
//! waits while its node is paused, takes time to reach the store, may be refused, lands
//! (in a task of its own, so a request already sent lands even if its sender crashes or gives
//! up), takes time to come back, and may lose its answer after landing. A node cut off from
//! the store waits out a timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use omnigraph_cloud_cluster::lease::{CasOutcome, LeaseBackend, LeaseError, Stored};
use tokio::sync::oneshot;

use super::world::{STORE_TIMEOUT, TIMED_OUT, World};

type Landing<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Clone)]
pub(super) struct Link {
    pub world: Arc<World>,
    pub node: usize,
}

impl Link {
    /// Sends one request whose effect at the store is `apply`; its answer, or the failure's
    /// message.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        apply: impl FnOnce(Arc<World>) -> Landing<T> + Send + 'static,
    ) -> Result<T, &'static str> {
        self.world.strike_armed_pause(self.node);
        self.world.running(self.node).await;
        let plan = self.world.plan_request();
        if self.world.cut_from_store(self.node) {
            tokio::time::sleep(STORE_TIMEOUT).await;
            return Err(TIMED_OUT);
        }
        if let Some(refused) = plan.refused {
            tokio::time::sleep(plan.to_store).await;
            return Err(refused);
        }
        let (answer, answered) = oneshot::channel();
        let world = Arc::clone(&self.world);
        // The answer's way back is timed from the landing, not from when the sender next
        // runs: a node resumed after a pause finds it waiting, as a process resumed after
        // SIGSTOP finds it in its socket.
        tokio::spawn(async move {
            tokio::time::sleep(plan.to_store).await;
            let landed = apply(world).await;
            tokio::time::sleep(plan.back).await;
            let _ = answer.send(landed);
        });
        let answer = answered.await.expect("a landing always answers");
        self.world.running(self.node).await;
        if self.world.cut_from_store(self.node) {
            tokio::time::sleep(STORE_TIMEOUT).await;
            return Err(TIMED_OUT);
        }
        match plan.lost {
            Some(lost) => Err(lost),
            None => Ok(answer),
        }
    }
}

fn lease_error(message: &str) -> LeaseError {
    LeaseError::Storage(message.to_string())
}

#[async_trait]
impl LeaseBackend for Link {
    async fn read(&self, path: &str) -> Result<Option<Stored>, LeaseError> {
        let path = path.to_string();
        self.call(move |world| Box::pin(async move { world.leases.read(&path).await }))
            .await
            .map_err(lease_error)?
    }

    async fn write(
        &self,
        path: &str,
        bytes: Vec<u8>,
        expected: Option<String>,
    ) -> Result<CasOutcome, LeaseError> {
        let path = path.to_string();
        self.call(move |world| {
            Box::pin(async move { world.leases.write(&path, bytes, expected).await })
        })
        .await
        .map_err(lease_error)?
    }

    async fn list(&self, dir: &str) -> Result<Vec<(String, String)>, LeaseError> {
        let dir = dir.to_string();
        self.call(move |world| Box::pin(async move { world.leases.list(&dir).await }))
            .await
            .map_err(lease_error)?
    }
}
