//! Writing usage records, and reading them back.
//!
//! Every second the graphs warm on the node are counted active; every `interval` (and at
//! shutdown) what the meter counted becomes one record, `{USAGE_DIR}/{day}/{id}.json`, written
//! with create-if-absent. A record's id is fixed when it is made: a write that failed, or whose
//! answer was lost, is retried under the same id, and is written at most once. A record not
//! yet written stays queued, before any newer one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use omnigraph_cloud_cluster::Clock;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use omnigraph_cloud_config::TenantId;

use super::{GraphUsage, USAGE_DIR, USAGE_FORMAT, UsageMeter, UsageRecord};
use crate::{GraphStore, Registry, RepoError};

/// A node's usage records: what it counted, and those not written yet.
pub struct UsageFlush {
    meter: Arc<UsageMeter>,
    store: GraphStore,
    node: String,
    boot_ms: u64,
    clock: Clock,
    state: Mutex<State>,
}

struct State {
    sequence: u64,
    /// The start of the span the next record covers.
    since_ms: u64,
    /// Records not written yet, each with the tenant whose own root it goes to (`None`: the
    /// node's root).
    unsent: Vec<(Option<TenantId>, UsageRecord)>,
}

impl UsageFlush {
    pub fn new(meter: Arc<UsageMeter>, store: GraphStore, node: String, clock: Clock) -> Arc<Self> {
        let boot_ms = clock.wall_ms();
        Arc::new(UsageFlush {
            meter,
            store,
            node,
            boot_ms,
            clock,
            state: Mutex::new(State {
                sequence: 0,
                since_ms: boot_ms,
                unsent: Vec::new(),
            }),
        })
    }

    /// Counts the warm graphs of `registry` every second and flushes every `interval`, until
    /// the returned task is dropped (then call [`UsageFlush::flush`] once more).
    pub fn start(self: &Arc<Self>, registry: Registry, interval: Duration) -> UsageTask {
        let flush = Arc::clone(self);
        UsageTask(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut next_flush = tokio::time::Instant::now() + interval;
            loop {
                ticks.tick().await;
                for key in registry.warm_repos() {
                    flush.meter.active(&key);
                }
                if tokio::time::Instant::now() >= next_flush {
                    next_flush += interval;
                    if let Err(err) = flush.flush().await {
                        warn!(error = %err, "usage records not written; retried at the next flush");
                    }
                }
            }
        }))
    }

    /// Writes what the meter counted since the last flush, after any record a failed flush
    /// left; how many records were written.
    pub async fn flush(&self) -> Result<usize, RepoError> {
        let mut state = self.state.lock().await;
        let now = self.clock.wall_ms();
        let graphs = self.meter.take();
        if !graphs.is_empty() {
            state.sequence += 1;
            let id = format!("{}-{}-{:08}", self.node, self.boot_ms, state.sequence);
            // A tenant on a root of its own has its usage there, in a record of its own.
            let mut by_root: BTreeMap<Option<TenantId>, Vec<GraphUsage>> = BTreeMap::new();
            for graph in graphs {
                let own_root = TenantId::new(&graph.tenant)
                    .ok()
                    .filter(|tenant| self.store.tenant_root(tenant).is_some());
                by_root.entry(own_root).or_default().push(graph);
            }
            for (tenant, graphs) in by_root {
                let id = match &tenant {
                    Some(tenant) => format!("{id}.{tenant}"),
                    None => id.clone(),
                };
                let record = UsageRecord {
                    format: USAGE_FORMAT.into(),
                    id,
                    node: self.node.clone(),
                    from_ms: state.since_ms,
                    to_ms: now,
                    graphs,
                };
                state.unsent.push((tenant, record));
            }
        }
        state.since_ms = now;
        let mut written = 0;
        while let Some((tenant, record)) = state.unsent.first() {
            let bytes = serde_json::to_vec(record).expect("a usage record serializes");
            let created = self
                .store
                .create_system_object(tenant.as_ref(), &record_path(record), bytes)
                .await?;
            if !created {
                debug!(id = %record.id, "usage record written already (a retried flush)");
            }
            state.unsent.remove(0);
            written += 1;
        }
        Ok(written)
    }
}

/// The metering task; stopped when dropped.
pub struct UsageTask(JoinHandle<()>);

impl Drop for UsageTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn record_path(record: &UsageRecord) -> String {
    format!("{USAGE_DIR}/{}/{}.json", day_of(record.from_ms), record.id)
}

/// The UTC day of a Unix-millisecond time, `YYYY-MM-DD`.
pub fn day_of(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The records that may hold usage `query` takes: those filed from the day before its start
/// (a record is filed under the day its span starts) to the day of its end.
pub async fn read_records_for(
    store: &GraphStore,
    query: &super::UsageQuery,
) -> Result<Vec<UsageRecord>, RepoError> {
    let day = |second: Option<u64>, back: u64| {
        second.map(|second| day_of(second.saturating_sub(back) * 1000))
    };
    let from = day(query.from_s, 86_400);
    let to = day(query.to_s, 0);
    read_records(store, from.as_deref(), to.as_deref()).await
}

/// Every usage record from day `from` to day `to` (inclusive, `YYYY-MM-DD`; `None`: no bound),
/// in the node's root and in every tenant's own root (there, only the parts about the
/// tenants routed to it).
pub async fn read_records(
    store: &GraphStore,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<UsageRecord>, RepoError> {
    let mut records = Vec::new();
    for (root, tenants) in store.roots() {
        let mut found = read_records_in(&root, from, to).await?;
        if let Some(tenants) = tenants {
            // A tenant's root speaks for the tenants routed there, and no other.
            for record in &mut found {
                record
                    .graphs
                    .retain(|graph| tenants.iter().any(|tenant| tenant.as_str() == graph.tenant));
            }
            found.retain(|record| !record.graphs.is_empty());
        }
        records.extend(found);
    }
    Ok(records)
}

/// The usage records of one root: one listing of the days, one of each day taken, then the
/// records, a few at a time. A record that does not parse is skipped with a warning.
async fn read_records_in(
    store: &GraphStore,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<UsageRecord>, RepoError> {
    use futures::{StreamExt, TryStreamExt};
    let mut paths = Vec::new();
    for day in store.list_folders(USAGE_DIR).await? {
        if from.is_some_and(|from| day.as_str() < from) || to.is_some_and(|to| day.as_str() > to) {
            continue;
        }
        paths.extend(
            store
                .list_system_objects(&format!("{USAGE_DIR}/{day}"))
                .await?,
        );
    }
    let fetched: Vec<(String, Option<bytes::Bytes>)> = futures::stream::iter(paths)
        .map(|path| async move {
            let bytes = store.get_system_object(&path, None).await?;
            Ok::<_, RepoError>((path, bytes))
        })
        .buffered(16)
        .try_collect()
        .await?;
    let mut records = Vec::new();
    for (path, bytes) in fetched {
        let Some(bytes) = bytes else { continue };
        match serde_json::from_slice::<UsageRecord>(&bytes) {
            Ok(record) if record.format == USAGE_FORMAT => records.push(record),
            Ok(record) => {
                warn!(%path, format = %record.format, "usage record of another format skipped")
            }
            Err(err) => warn!(%path, error = %err, "unreadable usage record skipped"),
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use omnigraph_cloud_config::{GraphId, StorageRoot, TenantId};

    use super::*;
    use crate::RepoKey;
    use crate::metrics::StoreMetrics;
    use crate::usage::{UsageQuery, fold};

    fn key() -> RepoKey {
        RepoKey::new(TenantId::new("acme").unwrap(), GraphId::new("g").unwrap())
    }

    /// A store on the local root `dir`, and a meter flushing to it as node `n1`.
    fn metered(dir: &std::path::Path) -> (GraphStore, Arc<UsageMeter>, Arc<UsageFlush>) {
        let store =
            GraphStore::open(&StorageRoot::File(dir.into()), StoreMetrics::unregistered()).unwrap();
        let meter = Arc::new(UsageMeter::new(Clock::system()));
        let flush = UsageFlush::new(
            Arc::clone(&meter),
            store.clone(),
            "n1".into(),
            Clock::system(),
        );
        (store, meter, flush)
    }

    #[tokio::test]
    async fn a_failed_flush_is_retried_under_the_same_id_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, meter, flush) = metered(dir.path());
        meter.request(&key(), "read");
        meter.request(&key(), "read");

        // The usage folder cannot be made (a file is in its way): the flush fails, and the
        // record stays queued.
        std::fs::create_dir_all(dir.path().join("_system")).unwrap();
        std::fs::write(dir.path().join(USAGE_DIR), b"in the way").unwrap();
        assert!(flush.flush().await.is_err());
        meter.request(&key(), "write");
        std::fs::remove_file(dir.path().join(USAGE_DIR)).unwrap();
        // The queued record first, under its first id; then the newer counts.
        assert_eq!(flush.flush().await.unwrap(), 2);
        let records = read_records(&store, None, None).await.unwrap();
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().any(|id| id.ends_with("-00000001")), "{ids:?}");

        // A write whose answer was lost is retried: the record exists already, and counts once.
        let first = records[0].clone();
        let again = store
            .create_system_object(
                None,
                &record_path(&first),
                serde_json::to_vec(&first).unwrap(),
            )
            .await
            .unwrap();
        assert!(!again, "create-if-absent refuses the second write");
        let totals = fold(
            &read_records(&store, None, None).await.unwrap(),
            &UsageQuery::default(),
        );
        assert_eq!(totals[0].counts.requests["read"], 2);
        assert_eq!(totals[0].counts.requests["write"], 1);
        // Nothing counted: nothing written.
        assert_eq!(flush.flush().await.unwrap(), 0);
    }

    /// A tenant on a root of its own has its usage written there, and a record planted there
    /// by whoever can write that bucket counts for that tenant only.
    #[tokio::test]
    async fn a_tenant_root_holds_its_usage_and_speaks_for_no_other_tenant() {
        let (home, own) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (store, meter, flush) = metered(home.path());
        let acme = TenantId::new("acme").unwrap();
        store
            .set_tenant_roots(&[(acme.clone(), StorageRoot::File(own.path().into()))].into())
            .unwrap();
        let globex = RepoKey::new(TenantId::new("globex").unwrap(), GraphId::new("h").unwrap());
        meter.request(&key(), "write");
        meter.request(&globex, "read");
        assert_eq!(flush.flush().await.unwrap(), 2, "one record per root");
        let in_own = walk(own.path());
        assert_eq!(in_own.len(), 1, "{in_own:?}");
        assert!(in_own[0].ends_with(".acme.json"), "{in_own:?}");

        // Planted in acme's root: a record charging globex.
        let plant = UsageRecord {
            format: USAGE_FORMAT.into(),
            id: "planted".into(),
            node: "n9".into(),
            from_ms: 1_000,
            to_ms: 2_000,
            graphs: vec![GraphUsage {
                tenant: "globex".into(),
                graph: "h".into(),
                ..GraphUsage::default()
            }],
        };
        let at = own.path().join(record_path(&plant));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, serde_json::to_vec(&plant).unwrap()).unwrap();
        let records = read_records(&store, None, None).await.unwrap();
        assert!(
            records.iter().all(|record| record.id != "planted"),
            "{records:?}"
        );
        let totals = fold(&records, &UsageQuery::default());
        let reads = |tenant: &str| {
            totals
                .iter()
                .filter(|total| total.tenant == tenant)
                .map(|total| total.counts.requests.values().sum::<u64>())
                .sum::<u64>()
        };
        assert_eq!((reads("acme"), reads("globex")), (1, 1));
    }

    fn walk(dir: &std::path::Path) -> Vec<String> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path.display().to_string());
            }
        }
        files
    }
}
