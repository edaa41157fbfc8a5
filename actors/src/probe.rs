//! The boot-time storage probe: checks that the store really enforces the conditional writes
//! that Lance commits, the engine's manifest CAS and our leases rely on.
//!
//! A store that ignores `If-None-Match`/`If-Match` accepts every write and silently corrupts
//! commits under concurrency; several S3-compatible servers do exactly that. The probe writes
//! under `{root}/_system/probe/{run}/` and checks, in order:
//!
//! 1. create-if-absent: a second create of the same object is refused;
//! 2. update-if-match: an update carrying a stale ETag is refused (stores with ETags only;
//!    the local filesystem has no such primitive and the engine emulates it on one machine);
//! 3. racing creates: of several concurrent creates of one object exactly one wins;
//! 4. racing swaps: of several concurrent updates from one ETag exactly one wins.
//!
//! Every probe write carries distinct bytes, so no two writes share an ETag by accident.

use futures::future::join_all;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult,
    UpdateVersion,
};
use omnigraph_cloud_cluster::StoreOp;
use thiserror::Error;

use crate::metrics::StoreMetrics;

const RACERS: usize = 8;
const FIX: &str = "use a store that enforces If-None-Match and If-Match on PUT (AWS S3, MinIO, \
                   RustFS; moto only when it serves one request at a time), or, for a store known \
                   to be good, set storage.skip_probe = true";

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("storage does not enforce create-if-absent (If-None-Match: *): {detail}; {FIX}")]
    CreateNotEnforced { detail: String },
    #[error("storage does not enforce update-if-match (If-Match): {detail}; {FIX}")]
    UpdateNotEnforced { detail: String },
    #[error(
        "storage let {winners} of {RACERS} concurrent creates of one object win (exactly one must); {FIX}"
    )]
    RacingCreates { winners: usize },
    #[error(
        "storage let {winners} of {RACERS} concurrent updates from one ETag win (exactly one must); {FIX}"
    )]
    RacingSwaps { winners: usize },
    #[error("storage probe could not run: {0}")]
    Storage(#[from] object_store::Error),
}

/// What the probe verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub create_if_absent: bool,
    /// `false` when the store has no conditional update (the local filesystem).
    pub update_if_match: bool,
}

/// The store, with every request counted in the node's object-store metrics.
pub(crate) struct Counted<'a> {
    pub(crate) store: &'a dyn ObjectStore,
    pub(crate) metrics: &'a StoreMetrics,
}

impl Counted<'_> {
    async fn put_opts(
        &self,
        path: &ObjectPath,
        payload: PutPayload,
        options: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.metrics.record(StoreOp::Put, None);
        self.store.put_opts(path, payload, options).await
    }

    async fn head(&self, path: &ObjectPath) -> object_store::Result<ObjectMeta> {
        self.metrics.record(StoreOp::Head, None);
        self.store.head(path).await
    }

    async fn delete(&self, path: &ObjectPath) -> object_store::Result<()> {
        self.metrics.record(StoreOp::Delete, None);
        self.store.delete(path).await
    }
}

pub(crate) async fn run(
    store: &Counted<'_>,
    base: &ObjectPath,
    supports_update: bool,
) -> Result<ProbeReport, ProbeError> {
    let run = format!("{}-{}", std::process::id(), run_suffix());
    let dir = base
        .clone()
        .join("_system")
        .join("probe")
        .join(run.as_str());
    let result = checks(store, &dir, supports_update).await;
    for name in ["single", "race-create", "race-swap"] {
        let _ = store.delete(&dir.clone().join(name)).await;
    }
    result
}

async fn checks(
    store: &Counted<'_>,
    dir: &ObjectPath,
    supports_update: bool,
) -> Result<ProbeReport, ProbeError> {
    // 1. create-if-absent.
    let single = dir.clone().join("single");
    store.put_opts(&single, payload("first"), create()).await?;
    match store.put_opts(&single, payload("second"), create()).await {
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Ok(_) => {
            return Err(ProbeError::CreateNotEnforced {
                detail: "a second create of the same object succeeded".into(),
            });
        }
        Err(err) => return Err(err.into()),
    }
    // 3. racing creates.
    let race = dir.clone().join("race-create");
    let attempts =
        (0..RACERS).map(|i| store.put_opts(&race, payload(&format!("racer {i}")), create()));
    let winners = count_winners(join_all(attempts).await, |err| {
        matches!(err, object_store::Error::AlreadyExists { .. })
    })?;
    if winners != 1 {
        return Err(ProbeError::RacingCreates { winners });
    }
    if !supports_update {
        return Ok(ProbeReport {
            create_if_absent: true,
            update_if_match: false,
        });
    }
    // 2. update-if-match with a stale ETag.
    let stale = store.head(&single).await?.e_tag;
    store
        .put_opts(&single, payload("third"), update(stale.clone()))
        .await?;
    match store
        .put_opts(&single, payload("fourth"), update(stale))
        .await
    {
        Err(object_store::Error::Precondition { .. }) => {}
        Ok(_) => {
            return Err(ProbeError::UpdateNotEnforced {
                detail: "an update carrying a stale ETag succeeded".into(),
            });
        }
        Err(err) => return Err(err.into()),
    }
    // 4. racing swaps from one ETag.
    let swap = dir.clone().join("race-swap");
    let base = store
        .put_opts(&swap, payload("base"), create())
        .await?
        .e_tag;
    let attempts = (0..RACERS)
        .map(|i| store.put_opts(&swap, payload(&format!("swap {i}")), update(base.clone())));
    let winners = count_winners(join_all(attempts).await, |err| {
        matches!(err, object_store::Error::Precondition { .. })
    })?;
    if winners != 1 {
        return Err(ProbeError::RacingSwaps { winners });
    }
    Ok(ProbeReport {
        create_if_absent: true,
        update_if_match: true,
    })
}

fn count_winners<T>(
    results: Vec<object_store::Result<T>>,
    is_expected_loss: impl Fn(&object_store::Error) -> bool,
) -> Result<usize, ProbeError> {
    let mut winners = 0;
    for result in results {
        match result {
            Ok(_) => winners += 1,
            Err(err) if is_expected_loss(&err) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(winners)
}

fn payload(text: &str) -> PutPayload {
    PutPayload::from(format!("omnigraph-cloud storage probe: {text}").into_bytes())
}

fn create() -> PutOptions {
    PutMode::Create.into()
}

fn update(e_tag: Option<String>) -> PutOptions {
    PutMode::Update(UpdateVersion {
        e_tag,
        version: None,
    })
    .into()
}

/// A per-run suffix, so that probes of several nodes on one root never collide.
fn run_suffix() -> String {
    format!(
        "{:x}{:08x}",
        omnigraph_cloud_cluster::Clock::system().wall_ms(),
        fastrand::u32(..)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    #[tokio::test]
    async fn local_filesystem_enforces_create_if_absent() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let metrics = StoreMetrics::unregistered();
        let store = Counted {
            store: &local,
            metrics: &metrics,
        };
        let report = run(&store, &ObjectPath::from(""), false).await.unwrap();
        assert_eq!(
            report,
            ProbeReport {
                create_if_absent: true,
                update_if_match: false
            }
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("_system/probe"))
            .unwrap()
            .flatten()
            .collect();
        let files: usize = leftovers
            .iter()
            .map(|run| std::fs::read_dir(run.path()).unwrap().count())
            .sum();
        assert_eq!(files, 0, "the probe cleans up after itself");
    }
}
