//! The lease protocol (see the module docs of [`super`]) over any [`LeaseBackend`].

use std::sync::Arc;

use tokio::time::Instant;

use super::backend::{CasOutcome, LeaseBackend};
use super::codec::{self, LEASE_DIR, ListedLease};
use super::invariants::{self, Transition};
use super::node::{NodeLeases, read_node_record};
use super::record::{
    Acquired, Lease, LeaseError, LeaseKind, LeaseLost, LeaseRecord, LeaseTiming, NodeTie,
};
use crate::{Clock, OpCounter, ProcessStamp, RepoKey, StoreOp};

/// Reads and writes lease objects under a storage root.
#[derive(Clone)]
pub struct LeaseStore {
    backend: Arc<dyn LeaseBackend>,
    counter: Arc<dyn OpCounter>,
    timing: LeaseTiming,
    clock: Clock,
    /// Written into every lease this store takes (see [`LeaseRecord::address`]).
    address: Option<Arc<str>>,
    /// This node's lease: leases taken while it is held hang off it (`crate::directory`).
    node: Option<Arc<dyn NodeLeases>>,
    /// Tied leases of this process whose release failed: nothing holds them here any more,
    /// but their node lease keeps them held for everyone else, so this process may take them
    /// back (as a lost epoch of its own).
    abandoned: Arc<std::sync::Mutex<std::collections::HashSet<(RepoKey, LeaseKind, u64)>>>,
}

impl LeaseStore {
    /// Leases on `backend`, each request counted by `counter`, read against the system clock.
    pub fn new(
        backend: Arc<dyn LeaseBackend>,
        counter: Arc<dyn OpCounter>,
        timing: LeaseTiming,
    ) -> LeaseStore {
        LeaseStore {
            backend,
            counter,
            timing,
            clock: Clock::system(),
            address: None,
            node: None,
            abandoned: Arc::default(),
        }
    }

    /// The same store, tying the leases it takes to this node's lease in `directory` while
    /// the node holds it: they are then never renewed themselves (one write per node renews
    /// them all), and last while the node lease lasts.
    pub fn with_node_leases(mut self, node: Arc<dyn NodeLeases>) -> LeaseStore {
        self.node = Some(node);
        self
    }

    /// The same store, writing `address` (`host:port` of this node's HTTP API) into the
    /// leases it takes, so that other nodes can forward writes to it.
    pub fn with_address(mut self, address: impl Into<Arc<str>>) -> LeaseStore {
        self.address = Some(address.into());
        self
    }

    /// The store the leases live on (the node directory writes beside them).
    pub(crate) fn backend(&self) -> Arc<dyn LeaseBackend> {
        Arc::clone(&self.backend)
    }

    /// What counts this store's requests.
    pub(crate) fn counter(&self) -> Arc<dyn OpCounter> {
        Arc::clone(&self.counter)
    }

    /// The address written into the leases this store takes.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// The same store, timed by `clock` (tests run it on paused time).
    pub fn with_clock(mut self, clock: Clock) -> LeaseStore {
        self.clock = clock;
        self
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Takes the lease if it is absent, expired or released. Never waits.
    pub async fn acquire(
        &self,
        key: &RepoKey,
        kind: LeaseKind,
        holder: &str,
    ) -> Result<Acquired, LeaseError> {
        self.reacquire(key, kind, holder, None).await
    }

    /// [`LeaseStore::acquire`], by a holder that lost epoch `lost` of this lease: a record of
    /// its own at that epoch is taken over too. Such a record is left by a renewal that landed
    /// although its answer was lost; the holder stopped acting under that epoch at its
    /// deadline, and nobody else ever held it, so nothing acts under it any more.
    pub async fn reacquire(
        &self,
        key: &RepoKey,
        kind: LeaseKind,
        holder: &str,
        lost: Option<u64>,
    ) -> Result<Acquired, LeaseError> {
        let sent = self.clock.now();
        let now = self.clock.wall_ms();
        let current = self.read(key, kind).await?;
        let abandoned = |record: &LeaseRecord| {
            self.abandoned.lock().expect("abandoned leases").contains(&(
                key.clone(),
                kind,
                record.epoch,
            ))
        };
        let own_lost = |record: &LeaseRecord| {
            record.holder == holder && (lost == Some(record.epoch) || abandoned(record))
        };
        let (record, expected) = match &current {
            None => (self.fresh_record(holder, 1, now), None),
            Some((record, _))
                if !record.is_free_at(now)
                    && !self.predecessor_gone(record, holder, now)
                    && !own_lost(record) =>
            {
                return Ok(Acquired::Held(record.clone()));
            }
            Some((record, version)) => (
                self.fresh_record(holder, record.epoch + 1, now),
                Some(version.clone()),
            ),
        };
        let previous = current.as_ref().map(|(record, _)| record);
        let tied = self.node.as_ref().and_then(|directory| directory.held());
        let mut record = record;
        record.node = tied.as_ref().map(|(tie, _)| tie.clone());
        if record.node.is_some() {
            // Never expires by itself: only its node lease ends it. A reader that does not
            // know ties (an older release) then waits for a release instead of taking over
            // a live lease after one TTL.
            record.expires_at_ms = u64::MAX;
        }
        let deadline = match &tied {
            Some((_, deadline)) => *deadline,
            None => self.deadline_from(sent),
        };
        match self
            .write(key, kind, Transition::Acquire, previous, &record, expected)
            .await?
        {
            CasOutcome::Written(version) => Ok(Acquired::Acquired(Lease {
                key: key.clone(),
                kind,
                record,
                version,
                deadline,
            })),
            CasOutcome::Conflict => {
                // Lost the race: report whoever won.
                let winner = self.read(key, kind).await?.map(|(record, _)| record);
                Ok(Acquired::Held(winner.unwrap_or(record)))
            }
        }
    }

    /// Extends a held lease. [`LeaseError::Lost`] when it is no longer ours; a storage
    /// failure leaves the lease as it was (the holder keeps acting until its deadline, then
    /// stops).
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), LeaseError> {
        if !lease.is_live() {
            return Err(LeaseLost::Expired.into());
        }
        if let Some(tie) = &lease.record.node {
            // Renewed by the node lease it hangs off: no write, only its deadline followed.
            return match self.node_deadline(tie) {
                Some(deadline) => {
                    lease.deadline = deadline;
                    Ok(())
                }
                None => Err(LeaseLost::Expired.into()),
            };
        }
        let sent = self.clock.now();
        let now = self.clock.wall_ms();
        let record = LeaseRecord {
            renewed_at_ms: now,
            // Never earlier than the expiry already written, should the wall clock step back.
            expires_at_ms: (now + self.ttl_ms()).max(lease.record.expires_at_ms),
            nonce: codec::nonce(),
            ..lease.record.clone()
        };
        match self
            .write(
                &lease.key,
                lease.kind,
                Transition::Renew,
                Some(&lease.record),
                &record,
                Some(lease.version.clone()),
            )
            .await?
        {
            CasOutcome::Written(version) => {
                lease.record = record;
                lease.version = version;
                lease.deadline = self.deadline_from(sent);
                Ok(())
            }
            CasOutcome::Conflict => Err(self.loss(lease).await.into()),
        }
    }

    /// Gives the lease up so the next acquirer need not wait for its expiry. A lease already
    /// lost is left alone.
    pub async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        let tied = lease.record.node.is_some();
        let id = (lease.key.clone(), lease.kind, lease.record.epoch);
        let released = self.write_release(lease).await;
        if tied && released.is_err() {
            self.abandoned.lock().expect("abandoned leases").insert(id);
        }
        released
    }

    async fn write_release(&self, lease: Lease) -> Result<(), LeaseError> {
        let now = self.clock.wall_ms().max(lease.record.renewed_at_ms);
        let record = LeaseRecord {
            renewed_at_ms: now,
            expires_at_ms: now,
            released: true,
            nonce: codec::nonce(),
            ..lease.record.clone()
        };
        self.write(
            &lease.key,
            lease.kind,
            Transition::Release,
            Some(&lease.record),
            &record,
            Some(lease.version),
        )
        .await?;
        Ok(())
    }

    /// Confirms, against the store, that the lease is still ours and live. Run before every
    /// destructive step.
    pub async fn validate(&self, lease: &Lease) -> Result<(), LeaseError> {
        if !lease.is_live() {
            return Err(LeaseLost::Expired.into());
        }
        if let Some(tie) = &lease.record.node
            && self.node_deadline(tie).is_none()
        {
            return Err(LeaseLost::Expired.into());
        }
        match self.read(&lease.key, lease.kind).await? {
            Some((_, version)) if version == lease.version => {
                if lease.is_live() {
                    Ok(())
                } else {
                    Err(LeaseLost::Expired.into())
                }
            }
            _ => Err(self.loss(lease).await.into()),
        }
    }

    /// The lease object as stored, if any.
    pub async fn get(
        &self,
        key: &RepoKey,
        kind: LeaseKind,
    ) -> Result<Option<LeaseRecord>, LeaseError> {
        Ok(self.read(key, kind).await?.map(|(record, _)| record))
    }

    /// Every lease object under the root (one listing request per thousand leases on S3).
    pub async fn list(&self) -> Result<Vec<ListedLease>, LeaseError> {
        self.counter.count(StoreOp::List, None);
        let mut leases: Vec<ListedLease> = self
            .backend
            .list(LEASE_DIR)
            .await?
            .iter()
            .filter_map(|(path, version)| codec::parse_lease_path(path, version))
            .collect();
        leases.sort_by(|a, b| (&a.key, a.kind).cmp(&(&b.key, b.kind)));
        Ok(leases)
    }

    fn ttl_ms(&self) -> u64 {
        self.timing.ttl.as_millis() as u64
    }

    fn fresh_record(&self, holder: &str, epoch: u64, now: u64) -> LeaseRecord {
        LeaseRecord {
            holder: holder.to_string(),
            epoch,
            expires_at_ms: now + self.ttl_ms(),
            acquired_at_ms: now,
            renewed_at_ms: now,
            released: false,
            nonce: codec::nonce(),
            process: ProcessStamp::current().cloned(),
            address: self.address.as_deref().map(str::to_string),
            node: None,
        }
    }

    /// Whether `record` is held by a dead predecessor of `holder` (see
    /// [`LeaseRecord::held_by_dead_predecessor_of`]) whose last renewal is at least
    /// `safety_margin` old: requests it sent before it died get that long to land, the same
    /// allowance self-fencing makes for clock drift.
    fn predecessor_gone(&self, record: &LeaseRecord, holder: &str, now: u64) -> bool {
        let settled = now
            >= record
                .renewed_at_ms
                .saturating_add(self.timing.safety_margin.as_millis() as u64);
        settled && record.held_by_dead_predecessor_of(holder)
    }

    fn deadline_from(&self, sent: Instant) -> Instant {
        sent + self.timing.ttl.saturating_sub(self.timing.safety_margin)
    }

    async fn loss(&self, lease: &Lease) -> LeaseLost {
        match self.read(&lease.key, lease.kind).await {
            Ok(Some((record, _)))
                if record.epoch != lease.record.epoch || record.holder != lease.record.holder =>
            {
                LeaseLost::TakenOver {
                    holder: record.holder,
                    epoch: record.epoch,
                }
            }
            _ => LeaseLost::Expired,
        }
    }

    async fn read(
        &self,
        key: &RepoKey,
        kind: LeaseKind,
    ) -> Result<Option<(LeaseRecord, String)>, LeaseError> {
        self.counter.count(StoreOp::Get, Some(key));
        let path = codec::lease_path(key, kind);
        match self.backend.read(&path).await? {
            None => Ok(None),
            Some(stored) => {
                let mut record = codec::decode(&path, &stored.bytes)?;
                self.resolve_tie(&mut record).await?;
                Ok(Some((record, stored.version)))
            }
        }
    }

    /// A lease tied to a node lease expires when that node lease does: its expiry is read
    /// from the node's record, fresh (takeovers are decided on it), and is in the past once
    /// that record is released, expired, or at another generation or epoch.
    async fn resolve_tie(&self, record: &mut LeaseRecord) -> Result<(), LeaseError> {
        let Some(tie) = &record.node else {
            return Ok(());
        };
        if record.released {
            return Ok(());
        }
        let node = read_node_record(&*self.backend, &*self.counter, &tie.node).await?;
        record.expires_at_ms = match node {
            Some((node, _))
                if node.generation == tie.generation
                    && node.epoch == tie.epoch
                    && !node.released =>
            {
                node.expires_at_ms
            }
            _ => 0,
        };
        Ok(())
    }

    /// Until when this process may act under a lease tied to `tie`: its node lease's
    /// deadline, while it holds that node lease at the tie's generation and epoch.
    fn node_deadline(&self, tie: &NodeTie) -> Option<Instant> {
        let (held, deadline) = self.node.as_ref()?.held()?;
        (held == *tie).then_some(deadline)
    }

    /// Writes `record` over `previous` (create-if-absent when `expected` is `None`, else
    /// update-if-match), once it passes the invariants.
    async fn write(
        &self,
        key: &RepoKey,
        kind: LeaseKind,
        transition: Transition,
        previous: Option<&LeaseRecord>,
        record: &LeaseRecord,
        expected: Option<String>,
    ) -> Result<CasOutcome, LeaseError> {
        invariants::check(transition, previous, record).map_err(LeaseError::Invariant)?;
        self.counter.count(StoreOp::Put, Some(key));
        let path = codec::lease_path(key, kind);
        self.backend
            .write(&path, codec::encode(record), expected)
            .await
    }
}
