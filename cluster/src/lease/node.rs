//! Node records, as the lease store reads them: a lease tied to a node lease
//! ([`super::NodeTie`]) lasts while its node's record does. The node lease itself is taken
//! and renewed by `crate::directory`.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{LeaseBackend, LeaseError, NodeTie};
use crate::{OpCounter, ProcessStamp, StoreOp};

const DIR: &str = "_system/nodes";

/// What holds this process's node lease, if anything (`crate::directory::NodeDirectory`).
pub trait NodeLeases: Send + Sync {
    /// The node lease held now, and until when this process may act under it.
    fn held(&self) -> Option<(NodeTie, Instant)>;
}

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
    /// The node lease's epoch: moves on whenever the node let it lapse.
    #[serde(default)]
    pub epoch: u64,
    /// The writing process, to prove a crashed predecessor gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessStamp>,
}

impl NodeRecord {
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        !self.released && now_ms <= self.expires_at_ms
    }
}

/// `node`'s record as stored, with its version; `None` when it has none (or the id is not a
/// plain file name). Read fresh: the lease store decides takeovers on it.
pub(crate) async fn read_node_record(
    backend: &dyn LeaseBackend,
    counter: &dyn OpCounter,
    node: &str,
) -> Result<Option<(NodeRecord, String)>, LeaseError> {
    let Some(path) = record_path(node) else {
        return Ok(None);
    };
    counter.count(StoreOp::Get, None);
    match backend.read(&path).await? {
        None => Ok(None),
        Some(stored) => {
            let record = serde_json::from_slice::<NodeRecord>(&stored.bytes).map_err(|err| {
                LeaseError::Corrupt {
                    path: path.clone(),
                    message: err.to_string(),
                }
            })?;
            Ok(Some((record, stored.version)))
        }
    }
}

/// The record's path, or `None` for an id that is not a plain file name.
pub(crate) fn record_path(node: &str) -> Option<String> {
    let fit = (1..=64).contains(&node.len())
        && !node.starts_with('.')
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    fit.then(|| format!("{DIR}/{node}.json"))
}
