//! The node directory: one small object per node at `{root}/_system/nodes/{node}.json`,
//! written by the node itself while it runs, saying where it answers HTTP.
//!
//! Gossip tells who is in the cluster, but it is unauthenticated; an address a caller's
//! credential may be sent to is only ever read from storage, which only nodes of the cluster
//! can write. A record is written with the store's conditional writes (create-if-absent,
//! update-if-match) like a lease, renewed every third of its TTL, and marked released when the
//! node stops; a record past its expiry names a node that is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::lease::{CasOutcome, LeaseBackend, LeaseError, LeaseStore};
use crate::{Clock, OpCounter, StoreOp};

const DIR: &str = "_system/nodes";

/// What a node says about itself in storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node: String,
    /// The node's gossip generation (its start time): a restart is a new record.
    pub generation: u64,
    /// `host:port` of its HTTP API.
    pub address: String,
    pub roles: Vec<String>,
    /// Wall-clock milliseconds after which the record names a node that is gone.
    pub expires_at_ms: u64,
    /// Set when the node stopped cleanly.
    #[serde(default)]
    pub released: bool,
    /// Fresh on every write: the record's version on stores without ETags, and different
    /// bytes (so a different ETag) on those with them.
    pub nonce: String,
}

impl NodeRecord {
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        !self.released && now_ms <= self.expires_at_ms
    }
}

/// Reads and writes node records; lookups are cached briefly.
pub struct NodeDirectory {
    backend: Arc<dyn LeaseBackend>,
    counter: Arc<dyn OpCounter>,
    clock: Clock,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<NodeRecord>)>>,
}

impl NodeDirectory {
    /// The directory on the store and clock of `leases`, records lasting its TTL.
    pub fn new(leases: &LeaseStore) -> NodeDirectory {
        NodeDirectory {
            backend: leases.backend(),
            counter: leases.counter(),
            clock: leases.clock(),
            ttl: leases.timing().ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How often a running node rewrites its record.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Writes this node's record (`released` at shutdown).
    pub async fn publish(
        &self,
        node: &str,
        generation: u64,
        address: &str,
        roles: &[String],
        released: bool,
    ) -> Result<(), LeaseError> {
        let path = record_path(node).ok_or(LeaseError::Invariant("node id unfit for a path"))?;
        let record = NodeRecord {
            node: node.to_string(),
            generation,
            address: address.to_string(),
            roles: roles.to_vec(),
            expires_at_ms: self.clock.wall_ms() + self.ttl.as_millis() as u64,
            released,
            nonce: crate::lease::nonce(),
        };
        let bytes = serde_json::to_vec(&record).expect("a node record serializes");
        // Only this node writes its record; a conflict is a racing earlier write of its own
        // (or a restart of the same id), so read the version again and write once more.
        for _ in 0..2 {
            self.counter.count(StoreOp::Get, None);
            let expected = self.backend.read(&path).await?.map(|stored| stored.version);
            self.counter.count(StoreOp::Put, None);
            if let CasOutcome::Written(_) =
                self.backend.write(&path, bytes.clone(), expected).await?
            {
                return Ok(());
            }
        }
        Err(LeaseError::Storage(format!(
            "the node record {path} kept changing while it was written"
        )))
    }

    /// `node`'s record, if it has one; read again at most every second.
    pub async fn lookup(&self, node: &str) -> Result<Option<NodeRecord>, LeaseError> {
        const FRESH_FOR: Duration = Duration::from_secs(1);
        if let Some((read_at, record)) = self.cache.lock().expect("directory cache").get(node)
            && read_at.elapsed() < FRESH_FOR
        {
            return Ok(record.clone());
        }
        let Some(path) = record_path(node) else {
            return Ok(None);
        };
        self.counter.count(StoreOp::Get, None);
        let record = match self.backend.read(&path).await? {
            None => None,
            Some(stored) => Some(serde_json::from_slice::<NodeRecord>(&stored.bytes).map_err(
                |err| LeaseError::Corrupt {
                    path: path.clone(),
                    message: err.to_string(),
                },
            )?),
        };
        self.cache
            .lock()
            .expect("directory cache")
            .insert(node.to_string(), (Instant::now(), record.clone()));
        Ok(record)
    }

    /// Wall-clock milliseconds now, on the directory's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.wall_ms()
    }
}

/// The record's path, or `None` for an id that is not a plain file name.
fn record_path(node: &str) -> Option<String> {
    let fit = (1..=64).contains(&node.len())
        && !node.starts_with('.')
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    fit.then(|| format!("{DIR}/{node}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{LeaseTiming, LocalBackend};

    #[tokio::test]
    async fn a_node_publishes_renews_and_releases_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let leases = LeaseStore::new(
            Arc::new(LocalBackend::new(dir.path().to_path_buf())),
            Arc::new(()),
            LeaseTiming {
                ttl: Duration::from_secs(30),
                safety_margin: Duration::from_secs(10),
            },
        );
        let directory = NodeDirectory::new(&leases);
        let roles = ["serve".to_string()];
        directory
            .publish("n1", 7, "10.0.0.1:8080", &roles, false)
            .await
            .unwrap();
        directory
            .publish("n1", 7, "10.0.0.1:8080", &roles, false)
            .await
            .unwrap();
        let record = directory.lookup("n1").await.unwrap().unwrap();
        assert_eq!(
            (record.generation, record.address.as_str()),
            (7, "10.0.0.1:8080")
        );
        assert!(record.is_live_at(directory.now_ms()));
        // A second directory (another node) reads it from storage.
        let other = NodeDirectory::new(&leases);
        directory
            .publish("n1", 7, "10.0.0.1:8080", &roles, true)
            .await
            .unwrap();
        let released = other.lookup("n1").await.unwrap().unwrap();
        assert!(!released.is_live_at(other.now_ms()));
        assert_eq!(other.lookup("n2").await.unwrap(), None);
        // Ids that are not plain file names are never paths.
        assert!(
            directory
                .publish("../x", 1, "a:1", &roles, false)
                .await
                .is_err()
        );
        assert_eq!(other.lookup("../x").await.unwrap(), None);
    }
}
