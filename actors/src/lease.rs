//! Leases in object storage: who may write a repo, recover it or compact it, with no
//! coordinator but the store's conditional writes.
//!
//! A lease is one small JSON object per (repo, kind) at
//! `{root}/_system/leases/{tenant}/{graph}/{kind}.json`, holding the holder's id, an epoch and
//! an expiry (wall-clock milliseconds). The protocol:
//!
//! - **acquire**: create-if-absent (epoch 1); or, over a lease that is expired or released,
//!   update-if-match on the version read, with the epoch bumped (a takeover). Of any number of
//!   racers exactly one write succeeds: the others' preconditions fail.
//! - **renew**: update-if-match on the version the holder last wrote, same epoch, later expiry.
//!   A failed precondition means someone took the lease over: the holder has lost it.
//! - **release**: update-if-match to a record marked released, so that the next acquirer need
//!   not wait for the expiry. Object stores have no conditional delete, so leases are never
//!   deleted (a deleted lease could be recreated at epoch 1 and reuse an epoch).
//! - **validate**: a read that confirms the store still holds exactly the version this holder
//!   wrote. Every destructive step (deleting files, restoring a dataset) validates first.
//!
//! Every write carries a fresh nonce: S3-compatible stores use the MD5 of the content as ETag,
//! so two writes of identical bytes would share an ETag and an old value written back could
//! satisfy a stale compare-and-swap.
//!
//! **Self-fencing.** A holder acts only until its *deadline*: the instant its last successful
//! write was sent, plus the TTL, minus a safety margin, measured on its own monotonic clock.
//! Others may take over once their wall clock passes the recorded expiry. As long as clocks
//! disagree by less than the margin, the holder has stopped before anyone else can start.
//!
//! Local roots (`file://`) have no conditional update in `object_store`; there every read and
//! write of a lease happens under an exclusive `flock` on a sibling `.lock` file, with the
//! nonce as the version and an atomic rename as the write. That is exclusive between the
//! processes of one machine, which is what a local root can be shared by.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::time::Instant;

use crate::RepoKey;
use crate::metrics::{StoreMetrics, StoreOp};
use crate::process::ProcessStamp;
use crate::storage::{list_under, listing_version};

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

/// The node id of a holder id `{node}-{pid}-{random}` (see `maintenance::holder_id`).
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
    version: String,
    deadline: Instant,
}

impl Lease {
    pub fn epoch(&self) -> u64 {
        self.record.epoch
    }

    /// Whether the holder may still act: its deadline (see the module docs) lies ahead.
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

/// Reads and writes lease objects under a storage root.
#[derive(Clone)]
pub struct LeaseStore {
    backend: Arc<Backend>,
    metrics: StoreMetrics,
    timing: LeaseTiming,
}

enum Backend {
    Store {
        store: Arc<dyn ObjectStore>,
        base: ObjectPath,
    },
    Local {
        root: PathBuf,
    },
}

/// A lease object as found by [`LeaseStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLease {
    pub key: RepoKey,
    pub kind: LeaseKind,
    /// Changes whenever the object is written (its ETag, or its modification time).
    pub version: String,
}

const LEASE_DIR: &str = "_system/leases";

enum WriteOutcome {
    Written(String),
    Conflict,
}

impl LeaseStore {
    pub(crate) fn on_store(
        store: Arc<dyn ObjectStore>,
        base: ObjectPath,
        metrics: StoreMetrics,
        timing: LeaseTiming,
    ) -> LeaseStore {
        LeaseStore {
            backend: Arc::new(Backend::Store { store, base }),
            metrics,
            timing,
        }
    }

    pub(crate) fn on_local(
        root: PathBuf,
        metrics: StoreMetrics,
        timing: LeaseTiming,
    ) -> LeaseStore {
        LeaseStore {
            backend: Arc::new(Backend::Local { root }),
            metrics,
            timing,
        }
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// Takes the lease if it is absent, expired or released. Never waits.
    pub async fn acquire(
        &self,
        key: &RepoKey,
        kind: LeaseKind,
        holder: &str,
    ) -> Result<Acquired, LeaseError> {
        let sent = Instant::now();
        let now = now_ms();
        let current = self.read(key, kind).await?;
        let (record, expected) = match &current {
            None => (self.fresh_record(holder, 1, now, now), None),
            Some((record, _))
                if !record.is_free_at(now) && !self.predecessor_gone(record, holder, now) =>
            {
                return Ok(Acquired::Held(record.clone()));
            }
            Some((record, version)) => (
                self.fresh_record(holder, record.epoch + 1, now, now),
                Some(version.clone()),
            ),
        };
        match self.write(key, kind, &record, expected).await? {
            WriteOutcome::Written(version) => Ok(Acquired::Acquired(Lease {
                key: key.clone(),
                kind,
                record,
                version,
                deadline: self.deadline_from(sent),
            })),
            WriteOutcome::Conflict => {
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
        let sent = Instant::now();
        let now = now_ms();
        let record = LeaseRecord {
            renewed_at_ms: now,
            expires_at_ms: now + self.timing.ttl.as_millis() as u64,
            nonce: nonce(),
            ..lease.record.clone()
        };
        match self
            .write(&lease.key, lease.kind, &record, Some(lease.version.clone()))
            .await?
        {
            WriteOutcome::Written(version) => {
                lease.record = record;
                lease.version = version;
                lease.deadline = self.deadline_from(sent);
                Ok(())
            }
            WriteOutcome::Conflict => Err(self.loss(lease).await.into()),
        }
    }

    /// Gives the lease up so the next acquirer need not wait for its expiry. A lease already
    /// lost is left alone.
    pub async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        let now = now_ms();
        let record = LeaseRecord {
            renewed_at_ms: now,
            expires_at_ms: now,
            released: true,
            nonce: nonce(),
            ..lease.record.clone()
        };
        self.write(&lease.key, lease.kind, &record, Some(lease.version))
            .await?;
        Ok(())
    }

    /// Confirms, against the store, that the lease is still ours and live. Run before every
    /// destructive step.
    pub async fn validate(&self, lease: &Lease) -> Result<(), LeaseError> {
        if !lease.is_live() {
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
        self.metrics.record(StoreOp::List, None);
        let relative: Vec<(String, String)> = match self.backend.as_ref() {
            Backend::Store { store, base } => {
                let prefix = join(base, LEASE_DIR);
                list_under(store.as_ref(), &prefix)
                    .await
                    .map_err(|err| LeaseError::Storage(err.to_string()))?
                    .into_iter()
                    .map(|(path, meta)| (format!("{LEASE_DIR}/{path}"), listing_version(&meta)))
                    .collect()
            }
            Backend::Local { root } => {
                let dir = root.join(LEASE_DIR);
                tokio::task::spawn_blocking(move || list_local(&dir))
                    .await
                    .map_err(|err| LeaseError::Storage(err.to_string()))?
                    .map_err(|err| LeaseError::Storage(err.to_string()))?
            }
        };
        let mut leases: Vec<ListedLease> = relative
            .iter()
            .filter_map(|(path, version)| parse_lease_path(path, version))
            .collect();
        leases.sort_by(|a, b| (&a.key, a.kind).cmp(&(&b.key, b.kind)));
        Ok(leases)
    }

    fn fresh_record(&self, holder: &str, epoch: u64, acquired_at_ms: u64, now: u64) -> LeaseRecord {
        LeaseRecord {
            holder: holder.to_string(),
            epoch,
            expires_at_ms: now + self.timing.ttl.as_millis() as u64,
            acquired_at_ms,
            renewed_at_ms: now,
            released: false,
            nonce: nonce(),
            process: ProcessStamp::current().cloned(),
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
        self.metrics.record(StoreOp::Get, Some(key));
        let relative = lease_path(key, kind);
        match self.backend.as_ref() {
            Backend::Store { store, base } => {
                let path = join(base, &relative);
                let result = match store.get(&path).await {
                    Ok(result) => result,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(err) => return Err(LeaseError::Storage(err.to_string())),
                };
                let version = result.meta.e_tag.clone().ok_or_else(|| {
                    LeaseError::Storage("the store returned no ETag for a lease object".into())
                })?;
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|err| LeaseError::Storage(err.to_string()))?;
                Ok(Some((decode(&relative, &bytes)?, version)))
            }
            Backend::Local { root } => {
                let path = root.join(&relative);
                let found = tokio::task::spawn_blocking(move || local::read_locked(&path))
                    .await
                    .map_err(|err| LeaseError::Storage(err.to_string()))?
                    .map_err(|err| LeaseError::Storage(err.to_string()))?;
                match found {
                    None => Ok(None),
                    Some(bytes) => {
                        let record = decode(&relative, &bytes)?;
                        let version = record.nonce.clone();
                        Ok(Some((record, version)))
                    }
                }
            }
        }
    }

    /// Writes `record`: create-if-absent when `expected` is `None`, else update-if-match.
    async fn write(
        &self,
        key: &RepoKey,
        kind: LeaseKind,
        record: &LeaseRecord,
        expected: Option<String>,
    ) -> Result<WriteOutcome, LeaseError> {
        self.metrics.record(StoreOp::Put, Some(key));
        let relative = lease_path(key, kind);
        let bytes = serde_json::to_vec_pretty(record).expect("a lease record serializes");
        match self.backend.as_ref() {
            Backend::Store { store, base } => {
                let path = join(base, &relative);
                let mode = match expected {
                    None => PutMode::Create,
                    Some(e_tag) => PutMode::Update(UpdateVersion {
                        e_tag: Some(e_tag),
                        version: None,
                    }),
                };
                match store
                    .put_opts(
                        &path,
                        PutPayload::from(Bytes::from(bytes)),
                        PutOptions::from(mode),
                    )
                    .await
                {
                    Ok(result) => result.e_tag.map(WriteOutcome::Written).ok_or_else(|| {
                        LeaseError::Storage("the store returned no ETag for a lease write".into())
                    }),
                    Err(
                        object_store::Error::AlreadyExists { .. }
                        | object_store::Error::Precondition { .. },
                    ) => Ok(WriteOutcome::Conflict),
                    // A create that lost the race to a takeover's update, or an update of an
                    // object that was never there.
                    Err(object_store::Error::NotFound { .. }) => Ok(WriteOutcome::Conflict),
                    Err(err) => Err(LeaseError::Storage(err.to_string())),
                }
            }
            Backend::Local { root } => {
                let path = root.join(&relative);
                let nonce = record.nonce.clone();
                let written = tokio::task::spawn_blocking(move || {
                    local::write_locked(&path, &bytes, expected.as_deref(), |current| {
                        decode_nonce(current)
                    })
                })
                .await
                .map_err(|err| LeaseError::Storage(err.to_string()))?
                .map_err(|err| LeaseError::Storage(err.to_string()))?;
                Ok(if written {
                    WriteOutcome::Written(nonce)
                } else {
                    WriteOutcome::Conflict
                })
            }
        }
    }
}

fn lease_path(key: &RepoKey, kind: LeaseKind) -> String {
    format!("{LEASE_DIR}/{}/{}/{}.json", key.tenant, key.graph, kind)
}

fn parse_lease_path(relative: &str, version: &str) -> Option<ListedLease> {
    let rest = relative.strip_prefix(LEASE_DIR)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (tenant, graph, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let kind = LeaseKind::parse(file.strip_suffix(".json")?)?;
    let tenant = omnigraph_cloud_config::TenantId::new(tenant).ok()?;
    let graph = omnigraph_cloud_config::GraphId::new(graph).ok()?;
    Some(ListedLease {
        key: RepoKey::new(tenant, graph),
        kind,
        version: version.to_string(),
    })
}

fn join(base: &ObjectPath, relative: &str) -> ObjectPath {
    relative
        .split('/')
        .fold(base.clone(), |path, part| path.join(part))
}

fn decode(path: &str, bytes: &[u8]) -> Result<LeaseRecord, LeaseError> {
    serde_json::from_slice(bytes).map_err(|err| LeaseError::Corrupt {
        path: path.to_string(),
        message: err.to_string(),
    })
}

fn decode_nonce(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<LeaseRecord>(bytes)
        .ok()
        .map(|record| record.nonce)
}

fn list_local(dir: &std::path::Path) -> std::io::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let tenants = match std::fs::read_dir(dir) {
        Ok(tenants) => tenants,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(err) => return Err(err),
    };
    for tenant in tenants.flatten() {
        for graph in std::fs::read_dir(tenant.path())?.flatten() {
            for file in std::fs::read_dir(graph.path())?.flatten() {
                let name = file.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".json") {
                    let modified = file
                        .metadata()?
                        .modified()?
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    found.push((
                        format!(
                            "{LEASE_DIR}/{}/{}/{name}",
                            tenant.file_name().to_string_lossy(),
                            graph.file_name().to_string_lossy()
                        ),
                        format!("{}.{:09}", modified.as_secs(), modified.subsec_nanos()),
                    ));
                }
            }
        }
    }
    Ok(found)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
}

/// 128 random bits, hex: unique per write.
fn nonce() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// The local-filesystem backend: each operation under an exclusive `flock`.
mod local {
    use std::fs::{self, File, OpenOptions};
    use std::io::{ErrorKind, Write};
    use std::path::Path;

    fn lock_file(path: &Path) -> std::io::Result<File> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("lock"))?;
        lock.lock()?;
        Ok(lock)
    }

    pub(super) fn read_locked(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        if !path.exists() {
            return Ok(None);
        }
        let _lock = lock_file(path)?;
        match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Writes `bytes` if the current object's version is `expected` (`None`: if absent).
    pub(super) fn write_locked(
        path: &Path,
        bytes: &[u8],
        expected: Option<&str>,
        version_of: impl Fn(&[u8]) -> Option<String>,
    ) -> std::io::Result<bool> {
        let _lock = lock_file(path)?;
        let current = match fs::read(path) {
            Ok(current) => Some(version_of(&current)),
            Err(err) if err.kind() == ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        let matches = match (expected, current) {
            (None, None) => true,
            (Some(expected), Some(Some(current))) => expected == current,
            _ => false,
        };
        if !matches {
            return Ok(false);
        }
        let staging = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut file = File::create(&staging)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&staging, path)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnigraph_cloud_config::{GraphId, TenantId};

    fn key() -> RepoKey {
        RepoKey::new(TenantId::new("acme").unwrap(), GraphId::new("g").unwrap())
    }

    fn local(dir: &std::path::Path, ttl_ms: u64) -> LeaseStore {
        LeaseStore::on_local(
            dir.to_path_buf(),
            StoreMetrics::unregistered(),
            LeaseTiming {
                ttl: Duration::from_millis(ttl_ms),
                safety_margin: Duration::from_millis(ttl_ms / 5),
            },
        )
    }

    #[tokio::test]
    async fn acquire_is_exclusive_until_release_then_the_epoch_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path(), 60_000);
        let Acquired::Acquired(mut lease) =
            store.acquire(&key(), LeaseKind::Writer, "a").await.unwrap()
        else {
            panic!("first acquire must win");
        };
        assert_eq!(lease.epoch(), 1);
        let Acquired::Held(held) = store.acquire(&key(), LeaseKind::Writer, "b").await.unwrap()
        else {
            panic!("a live lease must not be taken over");
        };
        assert_eq!((held.holder.as_str(), held.epoch), ("a", 1));
        store.renew(&mut lease).await.unwrap();
        store.validate(&lease).await.unwrap();
        let stale = lease.clone();
        store.release(lease).await.unwrap();
        let Acquired::Acquired(taken) =
            store.acquire(&key(), LeaseKind::Writer, "b").await.unwrap()
        else {
            panic!("a released lease is free");
        };
        assert_eq!(taken.epoch(), 2);
        assert!(matches!(
            store.validate(&stale).await,
            Err(LeaseError::Lost(LeaseLost::TakenOver { ref holder, epoch: 2 })) if holder == "b"
        ));
        let mut stale = stale;
        assert!(matches!(
            store.renew(&mut stale).await,
            Err(LeaseError::Lost(LeaseLost::TakenOver { .. }))
        ));
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (&listed[0].key, listed[0].kind),
            (&key(), LeaseKind::Writer)
        );
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_holder_knows() {
        let dir = tempfile::tempdir().unwrap();
        let store = local(dir.path(), 50);
        let Acquired::Acquired(mut lease) = store
            .acquire(&key(), LeaseKind::Compaction, "a")
            .await
            .unwrap()
        else {
            panic!("first acquire must win");
        };
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!lease.is_live(), "the holder fences itself");
        let Acquired::Acquired(taken) = store
            .acquire(&key(), LeaseKind::Compaction, "b")
            .await
            .unwrap()
        else {
            panic!("an expired lease is free");
        };
        assert_eq!(taken.epoch(), 2);
        assert!(matches!(
            store.renew(&mut lease).await,
            Err(LeaseError::Lost(LeaseLost::Expired))
        ));
    }
}
