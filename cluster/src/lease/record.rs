//! What a lease is: its kind, the record stored in object storage, the handle its holder keeps,
//! how long it lasts, and how it can be lost.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::time::Instant;

use crate::{ProcessStamp, RepoKey};

/// What a lease entitles its holder to do for one repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseKind {
    /// Publish writes to the repo.
    Writer,
    /// Run the engine's full recovery sweep (roll sidecars forward or back).
    Recovery,
    /// Run optimize, cleanup and index builds.
    Compaction,
}

impl LeaseKind {
    pub const ALL: [LeaseKind; 3] = [
        LeaseKind::Writer,
        LeaseKind::Recovery,
        LeaseKind::Compaction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeaseKind::Writer => "writer",
            LeaseKind::Recovery => "recovery",
            LeaseKind::Compaction => "compaction",
        }
    }

    pub fn parse(value: &str) -> Option<LeaseKind> {
        LeaseKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }
}

impl fmt::Display for LeaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lease object as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub holder: String,
    pub epoch: u64,
    /// Wall-clock milliseconds since the Unix epoch after which others may take over.
    pub expires_at_ms: u64,
    /// When this epoch began.
    pub acquired_at_ms: u64,
    /// When the holder last wrote the lease.
    pub renewed_at_ms: u64,
    /// Set by a clean release: the lease is free although its expiry may lie ahead.
    #[serde(default)]
    pub released: bool,
    /// Fresh on every write (see the module docs).
    pub nonce: String,
    /// The holder's process, where the platform can say (see [`ProcessStamp`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessStamp>,
    /// Where the holder's node answers HTTP (`host:port`): other nodes forward the repo's
    /// writes there. Read only from this record, never from gossip, so that a caller's
    /// credential only ever travels to a node that could write to the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Set when the lease hangs off its holder's node lease (`crate::directory`): it is never
    /// renewed itself, and lasts while that node lease lasts at this generation and epoch.
    /// Its `expires_at_ms` is then the node lease's, as [`super::LeaseStore`] reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeTie>,
}

/// The node lease a repo lease hangs off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTie {
    pub node: String,
    pub generation: u64,
    pub epoch: u64,
}

impl LeaseRecord {
    /// Whether someone other than the holder may take this lease over at `now_ms`.
    pub fn is_free_at(&self, now_ms: u64) -> bool {
        self.released || now_ms > self.expires_at_ms
    }

    /// Whether `holder` may take this unexpired lease over at once: it was held by an earlier
    /// process of the same node (same node id, host, boot and PID namespace) that provably no
    /// longer runs, e.g. the one a crash and restart replaced. A dead process cannot act, so
    /// waiting out its TTL protects nothing.
    pub fn held_by_dead_predecessor_of(&self, holder: &str) -> bool {
        node_part(&self.holder) == node_part(holder)
            && self.holder != holder
            && self
                .process
                .as_ref()
                .is_some_and(ProcessStamp::is_provably_gone)
    }
}

/// The node id of a holder id `{node}-{pid}-{random}` (as the node's maintenance names its
/// holders).
fn node_part(holder: &str) -> Option<&str> {
    let mut parts = holder.rsplitn(3, '-');
    let (_random, _pid) = (parts.next()?, parts.next()?);
    parts.next()
}

/// A lease this process holds. Dropping it does not release it (release is a write); the
/// lease then simply expires.
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: RepoKey,
    pub kind: LeaseKind,
    pub record: LeaseRecord,
    /// The version of the object this holder last wrote (its ETag, or its nonce locally).
    pub(super) version: String,
    pub(super) deadline: Instant,
}

impl Lease {
    pub fn epoch(&self) -> u64 {
        self.record.epoch
    }

    /// Whether the holder may still act: its deadline (see the module docs) lies ahead, on
    /// tokio's monotonic clock (which paused-time tests move).
    pub fn is_live(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// Until when the holder may act.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// The outcome of [`LeaseStore::acquire`].
#[derive(Debug)]
pub enum Acquired {
    Acquired(Lease),
    /// Someone else holds it (or won the race to take it over).
    Held(LeaseRecord),
}

#[derive(Debug, Error)]
pub enum LeaseError {
    /// The lease is no longer ours: stop acting.
    #[error(transparent)]
    Lost(#[from] LeaseLost),
    /// The store could not be reached or refused the request; the lease state is unknown.
    #[error("lease storage: {0}")]
    Storage(String),
    /// The lease object is not a lease (hand-edited or from an incompatible version).
    #[error("lease object {path} is unreadable: {message}")]
    Corrupt { path: String, message: String },
    /// A write that would break the protocol's invariants was refused before it was sent
    /// (see [`super::invariants`]): a defect, never a race.
    #[error("lease write refused, it would break an invariant: {0}")]
    Invariant(&'static str),
}

/// Why a held lease is no longer ours.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LeaseLost {
    #[error("lease taken over by '{holder}' at epoch {epoch}")]
    TakenOver { holder: String, epoch: u64 },
    #[error("lease expired before it could be renewed")]
    Expired,
}

/// How long leases last and how early holders stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub ttl: Duration,
    /// The holder stops acting this long before the expiry it wrote (bounds clock drift).
    pub safety_margin: Duration,
}

impl LeaseTiming {
    /// How often a holder renews: a third of the time it may act, so two renewals can fail
    /// before it must stop.
    pub fn renew_every(&self) -> Duration {
        (self.ttl.saturating_sub(self.safety_margin) / 3).max(Duration::from_millis(10))
    }
}
