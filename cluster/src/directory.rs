//! The node directory: one small object per node at `{root}/_system/nodes/{node}.json`,
//! written by the node itself while it runs, saying where it answers HTTP. It is also the
//! node's **lease**: repo leases taken while it is held hang off it ([`NodeTie`]) and are
//! never renewed themselves, so renewal costs one write per node, not one per graph.
//!
//! Gossip tells who is in the cluster, but it is unauthenticated; an address a caller's
//! credential may be sent to is only ever read from storage, which only nodes of the cluster
//! can write. A record is written with the store's conditional writes (create-if-absent,
//! update-if-match) like a lease, renewed every third of what the node may act on it, and
//! marked released when the node stops; a record past its expiry names a node that is gone.
//!
//! As a lease: the node acts under it until its deadline (its last successful write's send
//! time plus the TTL minus the safety margin), and a write after a lapse moves its epoch on,
//! which frees every repo lease tied to the earlier epoch (its holder stopped at that
//! deadline, and must take each lease again). A process of another generation takes the
//! record over only once it is free, or its writer provably no longer runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub use crate::lease::NodeRecord;
use crate::lease::{
    CasOutcome, LeaseBackend, LeaseError, LeaseStore, LeaseTiming, NodeLeases, NodeTie,
    read_node_record as read_record, record_path,
};
use crate::{Clock, OpCounter, ProcessStamp, StoreOp};

/// The node lease this process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldNode {
    pub generation: u64,
    pub epoch: u64,
    /// Until when this process may act under it (monotonic).
    pub deadline: Instant,
}

/// This process's own record, as it last wrote it.
struct Own {
    node: String,
    version: Option<String>,
    epoch: u64,
    deadline: Option<Instant>,
}

/// Reads and writes node records; lookups for display and placement are cached briefly.
pub struct NodeDirectory {
    backend: Arc<dyn LeaseBackend>,
    counter: Arc<dyn OpCounter>,
    clock: Clock,
    timing: LeaseTiming,
    cache: Mutex<HashMap<String, (Instant, Option<NodeRecord>)>>,
    own: tokio::sync::Mutex<Option<Own>>,
    held: watch::Sender<Option<(String, HeldNode)>>,
}

impl NodeDirectory {
    /// The directory on the store and clock of `leases`, records lasting its TTL.
    pub fn new(leases: &LeaseStore) -> NodeDirectory {
        NodeDirectory {
            backend: leases.backend(),
            counter: leases.counter(),
            clock: leases.clock(),
            timing: leases.timing(),
            cache: Mutex::new(HashMap::new()),
            own: tokio::sync::Mutex::new(None),
            held: watch::Sender::new(None),
        }
    }

    /// Whether a dead writer's requests have had the safety margin to land since its last
    /// write of `record` (as a dead predecessor's lease is taken over).
    fn settled(&self, record: &NodeRecord, now_ms: u64) -> bool {
        let written = record
            .expires_at_ms
            .saturating_sub(self.timing.ttl.as_millis() as u64);
        now_ms >= written.saturating_add(self.timing.safety_margin.as_millis() as u64)
    }

    /// How often a running node rewrites its record: a third of what it may act on it, so
    /// two writes can fail before it must stop.
    pub fn renew_every(&self) -> Duration {
        self.timing.renew_every()
    }

    /// The node lease this process holds now, and the tie a repo lease taken now hangs off.
    pub fn held(&self) -> Option<(NodeTie, HeldNode)> {
        self.held_lease()
    }

    fn held_lease(&self) -> Option<(NodeTie, HeldNode)> {
        let held = self.held.borrow();
        let (node, lease) = held.as_ref()?;
        (self.clock.now() < lease.deadline).then(|| {
            let tie = NodeTie {
                node: node.clone(),
                generation: lease.generation,
                epoch: lease.epoch,
            };
            (tie, *lease)
        })
    }

    /// Writes this node's record, taking or renewing its node lease (`released` at shutdown,
    /// which gives it up). Fails while another live process of this node id holds it.
    pub async fn publish(
        &self,
        node: &str,
        generation: u64,
        address: &str,
        roles: &[String],
        released: bool,
    ) -> Result<(), LeaseError> {
        let path = record_path(node).ok_or(LeaseError::Invariant("node id unfit for a path"))?;
        let mut own = self.own.lock().await;
        let state = own.get_or_insert_with(|| Own {
            node: node.to_string(),
            version: None,
            epoch: 0,
            deadline: None,
        });
        let sent = self.clock.now();
        let now = self.clock.wall_ms();
        let expected = match &state.version {
            Some(version) => Some(version.clone()),
            None => match read_record(&*self.backend, &*self.counter, node).await? {
                None => None,
                Some((record, version)) => {
                    if record.generation == generation {
                        state.epoch = state.epoch.max(record.epoch);
                    } else if record.is_live_at(now)
                        && !(record
                            .process
                            .as_ref()
                            .is_some_and(ProcessStamp::is_provably_gone)
                            && self.settled(&record, now))
                    {
                        return Err(LeaseError::Storage(format!(
                            "node id '{node}' is held by another live process (generation {}) \
                             until its record expires; give every node its own node.id",
                            record.generation
                        )));
                    }
                    Some(version)
                }
            },
        };
        let lapsed = state.deadline.is_none_or(|deadline| sent >= deadline);
        let epoch = if lapsed { state.epoch + 1 } else { state.epoch };
        let record = NodeRecord {
            node: node.to_string(),
            generation,
            address: address.to_string(),
            roles: roles.to_vec(),
            expires_at_ms: now + self.timing.ttl.as_millis() as u64,
            released,
            nonce: crate::lease::nonce(),
            epoch,
            process: ProcessStamp::current().cloned(),
        };
        let bytes = serde_json::to_vec(&record).expect("a node record serializes");
        self.counter.count(StoreOp::Put, None);
        match self.backend.write(&path, bytes, expected).await? {
            CasOutcome::Written(version) => {
                state.version = Some(version);
                state.epoch = epoch;
                // A write sent before the deadline but answered after it: others may have
                // seen the record expire meanwhile, so this epoch is not renewed; the next
                // write moves it on.
                let landed_late = !lapsed
                    && state
                        .deadline
                        .is_some_and(|deadline| self.clock.now() >= deadline);
                if released || landed_late {
                    state.deadline = None;
                    self.held.send_replace(None);
                } else {
                    let deadline = sent + self.timing.ttl.saturating_sub(self.timing.safety_margin);
                    state.deadline = Some(deadline);
                    let lease = HeldNode {
                        generation,
                        epoch,
                        deadline,
                    };
                    self.held.send_replace(Some((state.node.clone(), lease)));
                }
                Ok(())
            }
            CasOutcome::Conflict => {
                // Our own earlier write landed although its answer was lost, or the record
                // was taken over: read it again at the next renewal.
                state.version = None;
                Err(LeaseError::Storage(format!(
                    "the node record {path} changed under this node; it is read again at the \
                     next renewal"
                )))
            }
        }
    }

    /// `node`'s record, if it has one; read again at most every second.
    pub async fn lookup(&self, node: &str) -> Result<Option<NodeRecord>, LeaseError> {
        const FRESH_FOR: Duration = Duration::from_secs(1);
        if let Some((read_at, record)) = self.cache.lock().expect("directory cache").get(node)
            && read_at.elapsed() < FRESH_FOR
        {
            return Ok(record.clone());
        }
        let record = read_record(&*self.backend, &*self.counter, node)
            .await?
            .map(|(record, _)| record);
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

impl NodeLeases for NodeDirectory {
    fn held(&self) -> Option<(NodeTie, Instant)> {
        self.held_lease().map(|(tie, lease)| (tie, lease.deadline))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::RepoKey;
    use crate::lease::tests::{acquired, key, timing};
    use crate::lease::{Acquired, LeaseKind, LeaseTiming, LocalBackend, MemoryBackend};

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

    /// Whether `store`, asked for the lease as another node, finds it held.
    async fn held_for(store: &LeaseStore) -> bool {
        let acquired = store
            .acquire(&key(), LeaseKind::Writer, "n2")
            .await
            .unwrap();
        matches!(acquired, Acquired::Held(_))
    }

    /// Counts the PUTs a store sends.
    #[derive(Default)]
    struct Puts(std::sync::atomic::AtomicUsize);

    impl crate::OpCounter for Puts {
        fn count(&self, op: crate::StoreOp, _key: Option<&RepoKey>) {
            if op == crate::StoreOp::Put {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// Leases taken while the node lease is held hang off it: renewing them writes nothing,
    /// others see them held while the node lease is renewed, and once it lapses the holder stops
    /// before anyone else may take them; a node lease that lapsed comes back at a new epoch, and
    /// the leases tied to the old one are free.
    #[tokio::test(start_paused = true)]
    async fn leases_tied_to_the_node_lease_are_renewed_with_it() {
        let backend = Arc::new(MemoryBackend::new());
        let puts = Arc::new(Puts::default());
        let base = LeaseStore::new(backend.clone(), puts.clone(), timing(9_000))
            .with_clock(Clock::following_tokio());
        let directory = Arc::new(NodeDirectory::new(&base));
        directory
            .publish("n1", 7, "10.0.0.1:8080", &[], false)
            .await
            .unwrap();
        let tied = base.clone().with_node_leases(directory.clone());
        let other = LeaseStore::new(backend.clone(), Arc::new(()), timing(9_000))
            .with_clock(Clock::following_tokio());
        let mut lease = acquired(&tied, LeaseKind::Writer, "n1-1-a").await;
        let tie = lease.record.node.clone().expect("tied to the node lease");
        assert_eq!((tie.node.as_str(), tie.generation, tie.epoch), ("n1", 7, 1));

        let before = puts.0.load(std::sync::atomic::Ordering::SeqCst);
        let every = directory.renew_every();
        for _ in 0..10 {
            tokio::time::advance(every).await;
            directory
                .publish("n1", 7, "10.0.0.1:8080", &[], false)
                .await
                .unwrap();
            tied.renew(&mut lease).await.unwrap();
            assert!(lease.is_live());
        }
        let written = puts.0.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(
            written, 10,
            "only the node record is written, never the repo lease"
        );
        assert!(held_for(&other).await);

        // The node stops renewing: its holder stops at the node lease's deadline...
        let timing = base.timing();
        tokio::time::advance(timing.ttl - timing.safety_margin).await;
        assert!(!lease.is_live());
        assert!(tied.renew(&mut lease).await.is_err());
        // ...while the lease is still held for others, until the node record expires.
        assert!(held_for(&other).await);
        tokio::time::advance(timing.safety_margin + Duration::from_millis(10)).await;
        // The node comes back: its lease moves to epoch 2, and the tied lease is free.
        directory
            .publish("n1", 7, "10.0.0.1:8080", &[], false)
            .await
            .unwrap();
        assert_eq!(directory.held().unwrap().0.epoch, 2);
        let taken = acquired(&other, LeaseKind::Writer, "n2").await;
        assert_eq!(taken.epoch(), 2);
        assert!(
            taken.record.node.is_none(),
            "a store without a node lease takes untied leases"
        );
    }

    /// A released node record frees every lease tied to it at once.
    #[tokio::test(start_paused = true)]
    async fn a_released_node_lease_frees_its_leases_at_once() {
        let backend = Arc::new(MemoryBackend::new());
        let base = LeaseStore::new(backend.clone(), Arc::new(()), timing(9_000))
            .with_clock(Clock::following_tokio());
        let directory = Arc::new(NodeDirectory::new(&base));
        directory.publish("n1", 7, "a:1", &[], false).await.unwrap();
        let tied = base.clone().with_node_leases(directory.clone());
        acquired(&tied, LeaseKind::Writer, "n1-1-a").await;
        directory.publish("n1", 7, "a:1", &[], true).await.unwrap();
        assert!(directory.held().is_none());
        let taken = acquired(&base, LeaseKind::Writer, "n2").await;
        assert_eq!(taken.epoch(), 2);
    }
}
