//! Counters of the actor layer, registered into the node's Prometheus registry.

use omnigraph_cloud_cluster::lease::LeaseKind;
use omnigraph_cloud_cluster::{OpCounter, RepoKey, StoreOp};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct ActorMetrics {
    pub(crate) active: Gauge,
    pub(crate) activations: Counter,
    pub(crate) evictions: Counter,
    pressure_evictions: Family<PressureLabels, Counter>,
    pub(crate) restarts: Counter,
    pub(crate) activation_seconds: Histogram,
    pub(crate) coalescer: CoalescerMetrics,
}

impl ActorMetrics {
    /// Creates the metrics and registers them under `omnigraph_repo_*`.
    pub fn register(registry: &mut Registry) -> ActorMetrics {
        let metrics = ActorMetrics {
            active: Gauge::default(),
            activations: Counter::default(),
            evictions: Counter::default(),
            pressure_evictions: Family::default(),
            restarts: Counter::default(),
            activation_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            coalescer: CoalescerMetrics::register(registry),
        };
        registry.register(
            "omnigraph_repo_actors_active",
            "Repos warm in memory",
            metrics.active.clone(),
        );
        registry.register(
            "omnigraph_repo_activations",
            "Repos opened on first use",
            metrics.activations.clone(),
        );
        registry.register(
            "omnigraph_repo_evictions",
            "Repos evicted after their idle timeout",
            metrics.evictions.clone(),
        );
        registry.register(
            "omnigraph_repo_pressure_evictions",
            "Repos evicted before their idle timeout, least recently used first, by reason \
             (warm_cap: actors.max_warm_graphs reached; memory: resident memory above 90% of \
             node.memory_budget)",
            metrics.pressure_evictions.clone(),
        );
        registry.register(
            "omnigraph_repo_actor_restarts",
            "Repo actors restarted by their supervisor after a failure",
            metrics.restarts.clone(),
        );
        registry.register(
            "omnigraph_repo_activation_duration_seconds",
            "Time to open a repo on first use",
            metrics.activation_seconds.clone(),
        );
        metrics
    }

    /// Metrics not exported anywhere, for embedders and tests that do not scrape.
    pub fn unregistered() -> ActorMetrics {
        ActorMetrics::register(&mut Registry::default())
    }

    pub(crate) fn pressure_evictions(&self, reason: PressureReason) -> Counter {
        self.pressure_evictions
            .get_or_create(&PressureLabels {
                reason: reason.as_str(),
            })
            .clone()
    }

    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            warm_repos: self.active.get().max(0) as u64,
            activations: self.activations.get(),
            evictions: self.evictions.get(),
            restarts: self.restarts.get(),
        }
    }
}

/// Why a repo was evicted before its idle timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PressureReason {
    WarmCap,
    Memory,
}

impl PressureReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PressureReason::WarmCap => "warm_cap",
            PressureReason::Memory => "memory",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PressureLabels {
    reason: &'static str,
}

/// A point-in-time view of the registry, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryStats {
    pub warm_repos: u64,
    pub activations: u64,
    pub evictions: u64,
    pub restarts: u64,
}

/// Object-store requests our own code issues (existence checks, listings, deletions, the
/// probe), by operation, tenant and graph. The engine's own I/O is not visible here; the
/// fault-injecting proxy counts everything.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    requests: Family<StoreLabels, Counter>,
    /// Where a tenant's requests are also counted as its usage.
    usage: Option<std::sync::Arc<crate::usage::UsageMeter>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    op: &'static str,
    tenant: String,
    graph: String,
}

impl StoreMetrics {
    pub fn register(registry: &mut Registry) -> StoreMetrics {
        let metrics = StoreMetrics {
            requests: Family::default(),
            usage: None,
        };
        registry.register(
            "omnigraph_object_store_requests",
            "Object-store requests issued by the node itself (not the engine), by operation, tenant and graph",
            metrics.requests.clone(),
        );
        metrics
    }

    pub fn unregistered() -> StoreMetrics {
        StoreMetrics::register(&mut Registry::default())
    }

    /// Counts every request of a tenant as its usage too.
    pub fn with_usage(mut self, meter: std::sync::Arc<crate::usage::UsageMeter>) -> StoreMetrics {
        self.usage = Some(meter);
        self
    }

    pub(crate) fn record(&self, op: StoreOp, key: Option<&RepoKey>) {
        if let (Some(usage), Some(key)) = (&self.usage, key) {
            usage.store(&key.tenant, Some(key.graph.as_str()), op.as_str(), 0);
        }
        let (tenant, graph) = match key {
            Some(key) => (key.tenant.to_string(), key.graph.to_string()),
            None => ("_system".to_string(), String::new()),
        };
        self.requests
            .get_or_create(&StoreLabels {
                op: op.as_str(),
                tenant,
                graph,
            })
            .inc();
    }

    pub(crate) fn record_tenant(&self, op: StoreOp, tenant: &omnigraph_cloud_config::TenantId) {
        if let Some(usage) = &self.usage {
            usage.store(tenant, None, op.as_str(), 0);
        }
        let labels = StoreLabels {
            op: op.as_str(),
            tenant: tenant.to_string(),
            graph: String::new(),
        };
        self.requests.get_or_create(&labels).inc();
    }
}

/// The lease store counts its requests here too.
impl OpCounter for StoreMetrics {
    fn count(&self, op: StoreOp, key: Option<&RepoKey>) {
        self.record(op, key);
    }
}

/// The write coalescers of every repo on the node.
#[derive(Clone, Debug)]
pub struct CoalescerMetrics {
    pub(crate) batches: Counter,
    pub(crate) batch_writes: Histogram,
    pub(crate) publish_seconds: Histogram,
    pub(crate) queue_depth: Gauge,
    pub(crate) queue_bytes: Gauge,
    pub(crate) retries: Counter,
    pub(crate) splits: Counter,
    pub(crate) rejected: Counter,
}

impl CoalescerMetrics {
    pub fn register(registry: &mut Registry) -> CoalescerMetrics {
        let metrics = CoalescerMetrics {
            batches: Counter::default(),
            batch_writes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            publish_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            queue_depth: Gauge::default(),
            queue_bytes: Gauge::default(),
            retries: Counter::default(),
            splits: Counter::default(),
            rejected: Counter::default(),
        };
        registry.register(
            "omnigraph_write_batches",
            "Coalesced publishes of insert mutations",
            metrics.batches.clone(),
        );
        registry.register(
            "omnigraph_write_batch_size",
            "Writes per coalesced publish",
            metrics.batch_writes.clone(),
        );
        registry.register(
            "omnigraph_write_publish_duration_seconds",
            "Time to publish one unit of writes (a batch or a write alone)",
            metrics.publish_seconds.clone(),
        );
        registry.register(
            "omnigraph_write_queue_depth",
            "Writes waiting for a publish, all repos",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "omnigraph_write_queue_bytes",
            "Request bytes of the writes queued on this node, every graph together",
            metrics.queue_bytes.clone(),
        );
        registry.register(
            "omnigraph_write_conflict_retries",
            "Coalesced publishes retried after losing a race to another writer",
            metrics.retries.clone(),
        );
        registry.register(
            "omnigraph_write_batch_splits",
            "Failed batches split in halves to isolate the failing writes",
            metrics.splits.clone(),
        );
        registry.register(
            "omnigraph_write_rejected",
            "Writes refused with 429 because a repo's queue was full",
            metrics.rejected.clone(),
        );
        metrics
    }

    pub fn unregistered() -> CoalescerMetrics {
        CoalescerMetrics::register(&mut Registry::default())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Leases taken, lost and renewed by this node, by kind.
#[derive(Clone, Debug)]
pub struct LeaseMetrics {
    held: Family<KindLabel, Gauge>,
    acquired: Family<KindLabel, Counter>,
    lost: Family<KindLabel, Counter>,
    renewal_failures: Family<KindLabel, Counter>,
}

impl LeaseMetrics {
    pub fn register(registry: &mut Registry) -> LeaseMetrics {
        let metrics = LeaseMetrics {
            held: Family::default(),
            acquired: Family::default(),
            lost: Family::default(),
            renewal_failures: Family::default(),
        };
        registry.register(
            "omnigraph_leases_held",
            "Leases this node holds, by kind (writer, recovery, compaction)",
            metrics.held.clone(),
        );
        registry.register(
            "omnigraph_lease_acquisitions",
            "Leases acquired (created or taken over), by kind",
            metrics.acquired.clone(),
        );
        registry.register(
            "omnigraph_lease_losses",
            "Leases lost before release (taken over, or expired unrenewed), by kind",
            metrics.lost.clone(),
        );
        registry.register(
            "omnigraph_lease_renewal_failures",
            "Lease renewals that failed on a storage error, by kind",
            metrics.renewal_failures.clone(),
        );
        metrics
    }

    pub fn unregistered() -> LeaseMetrics {
        LeaseMetrics::register(&mut Registry::default())
    }

    fn label(kind: LeaseKind) -> KindLabel {
        KindLabel {
            kind: kind.as_str(),
        }
    }

    pub(crate) fn acquired(&self, kind: LeaseKind) {
        self.acquired.get_or_create(&Self::label(kind)).inc();
        self.held.get_or_create(&Self::label(kind)).inc();
    }

    pub(crate) fn released(&self, kind: LeaseKind) {
        self.held.get_or_create(&Self::label(kind)).dec();
    }

    pub(crate) fn lost(&self, kind: LeaseKind) {
        self.lost.get_or_create(&Self::label(kind)).inc();
        self.held.get_or_create(&Self::label(kind)).dec();
    }

    pub(crate) fn renewal_failed(&self, kind: LeaseKind) {
        self.renewal_failures
            .get_or_create(&Self::label(kind))
            .inc();
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    job: &'static str,
    outcome: &'static str,
}

/// Maintenance jobs run by this node.
#[derive(Clone, Debug)]
pub struct MaintenanceMetrics {
    runs: Family<RunLabels, Counter>,
    run_seconds: Family<RunLabels, Histogram, fn() -> Histogram>,
    pub(crate) recoveries: Counter,
    pub(crate) fragments_removed: Counter,
    pub(crate) versions_removed: Counter,
    pub(crate) bytes_removed: Counter,
}

impl MaintenanceMetrics {
    pub fn register(registry: &mut Registry) -> MaintenanceMetrics {
        let metrics = MaintenanceMetrics {
            runs: Family::default(),
            run_seconds: Family::new_with_constructor(run_histogram),
            recoveries: Counter::default(),
            fragments_removed: Counter::default(),
            versions_removed: Counter::default(),
            bytes_removed: Counter::default(),
        };
        registry.register(
            "omnigraph_maintenance_runs",
            "Maintenance jobs (recovery, compaction, cleanup) by outcome (done, deferred, failed)",
            metrics.runs.clone(),
        );
        registry.register(
            "omnigraph_maintenance_run_duration_seconds",
            "Duration of maintenance jobs",
            metrics.run_seconds.clone(),
        );
        registry.register(
            "omnigraph_recovery_sweeps",
            "Full recovery sweeps run over pending sidecars",
            metrics.recoveries.clone(),
        );
        registry.register(
            "omnigraph_compaction_fragments_removed",
            "Fragments removed by compaction",
            metrics.fragments_removed.clone(),
        );
        registry.register(
            "omnigraph_cleanup_versions_removed",
            "Old table versions removed by cleanup",
            metrics.versions_removed.clone(),
        );
        registry.register(
            "omnigraph_cleanup_bytes_removed",
            "Bytes removed by cleanup",
            metrics.bytes_removed.clone(),
        );
        metrics
    }

    pub fn unregistered() -> MaintenanceMetrics {
        MaintenanceMetrics::register(&mut Registry::default())
    }

    pub(crate) fn run(&self, job: &'static str, outcome: &'static str, took: std::time::Duration) {
        let labels = RunLabels { job, outcome };
        self.runs.get_or_create(&labels).inc();
        self.run_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

fn run_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}
