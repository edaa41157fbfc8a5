//! What the cache tier does, and every object-store request the engine makes through it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::RepoKey;

#[derive(Clone, Debug)]
pub struct CacheMetrics {
    hits: Family<TierLabels, Counter>,
    hit_bytes: Family<TierLabels, Counter>,
    misses: Family<KindLabels, Counter>,
    miss_bytes: Counter,
    errors: Counter,
    held_bytes: Gauge,
    capacity_bytes: Gauge,
    requests: Family<RequestLabels, Counter>,
    read_bytes: Family<RepoLabels, Counter>,
    /// Where the engine's requests are also counted as their tenant's usage.
    usage: Option<std::sync::Arc<crate::usage::UsageMeter>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    tenant: String,
    graph: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepoLabels {
    tenant: String,
    graph: String,
}

/// A snapshot for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub hit_bytes: u64,
    pub miss_bytes: u64,
    pub errors: u64,
    /// Bytes the memory tier holds.
    pub held_bytes: u64,
}

impl CacheMetrics {
    /// Creates the metrics and registers them under `omnigraph_cache_*` and
    /// `omnigraph_engine_store_*`.
    pub fn register(registry: &mut Registry) -> CacheMetrics {
        let metrics = CacheMetrics {
            hits: Family::default(),
            hit_bytes: Family::default(),
            misses: Family::default(),
            miss_bytes: Counter::default(),
            errors: Counter::default(),
            held_bytes: Gauge::default(),
            capacity_bytes: Gauge::default(),
            requests: Family::default(),
            read_bytes: Family::default(),
            usage: None,
        };
        registry.register(
            "omnigraph_cache_hits",
            "Reads answered by the cache, by tier (memory, disk, authority: a listing, HEAD or text file served by the writer-lease holder)",
            metrics.hits.clone(),
        );
        registry.register(
            "omnigraph_cache_hit_bytes",
            "Bytes answered by the cache, by tier",
            metrics.hit_bytes.clone(),
        );
        registry.register(
            "omnigraph_cache_misses",
            "Reads the cache could not answer, by kind (block, listing, head, text, object)",
            metrics.misses.clone(),
        );
        registry.register(
            "omnigraph_cache_miss_bytes",
            "Bytes of immutable objects read from the store on a cache miss",
            metrics.miss_bytes.clone(),
        );
        registry.register(
            "omnigraph_cache_errors",
            "Cache reads that failed (a damaged disk tier) and went to the store instead",
            metrics.errors.clone(),
        );
        registry.register(
            "omnigraph_cache_memory_bytes",
            "Bytes held by the cache's memory tier",
            metrics.held_bytes.clone(),
        );
        registry.register(
            "omnigraph_cache_memory_capacity_bytes",
            "Capacity of the cache's memory tier",
            metrics.capacity_bytes.clone(),
        );
        registry.register(
            "omnigraph_engine_store_requests",
            "Object-store requests made by the engine (through the cache tier), by operation, tenant and graph",
            metrics.requests.clone(),
        );
        registry.register(
            "omnigraph_engine_store_read_bytes",
            "Bytes the engine read from the object store, by tenant and graph",
            metrics.read_bytes.clone(),
        );
        metrics
    }

    pub fn unregistered() -> CacheMetrics {
        CacheMetrics::register(&mut Registry::default())
    }

    pub fn stats(&self) -> CacheStats {
        let sum = |family: &Family<TierLabels, Counter>| {
            ["memory", "disk", "authority"]
                .iter()
                .map(|tier| family.get_or_create(&TierLabels { tier }).get())
                .sum()
        };
        CacheStats {
            hits: sum(&self.hits),
            hit_bytes: sum(&self.hit_bytes),
            misses: ["block", "listing", "head", "text", "object"]
                .iter()
                .map(|kind| self.misses.get_or_create(&KindLabels { kind }).get())
                .sum(),
            miss_bytes: self.miss_bytes.get(),
            errors: self.errors.get(),
            held_bytes: self.held_bytes.get().max(0) as u64,
        }
    }

    pub(crate) fn hit(&self, tier: &'static str, bytes: u64) {
        self.hits.get_or_create(&TierLabels { tier }).inc();
        self.hit_bytes
            .get_or_create(&TierLabels { tier })
            .inc_by(bytes);
    }

    pub(crate) fn miss(&self, kind: &'static str) {
        self.misses.get_or_create(&KindLabels { kind }).inc();
    }

    pub(crate) fn miss_bytes(&self, bytes: u64) {
        self.miss_bytes.inc_by(bytes);
    }

    pub(crate) fn error(&self) {
        self.errors.inc();
    }

    pub(crate) fn held(&self, bytes: u64) {
        self.held_bytes.set(bytes as i64);
    }

    pub(crate) fn set_capacity(&self, bytes: u64) {
        self.capacity_bytes.set(bytes as i64);
    }

    /// One request the engine sent to the store for `repo`.
    /// Counts the engine's requests as their tenant's usage too.
    pub fn with_usage(mut self, meter: std::sync::Arc<crate::usage::UsageMeter>) -> CacheMetrics {
        self.usage = Some(meter);
        self
    }

    /// Bytes the engine sent to the store (`put`), for usage.
    pub(crate) fn written(&self, repo: &RepoKey, bytes: u64) {
        if let Some(usage) = &self.usage {
            usage.store_bytes(repo, "put", bytes);
        }
    }

    pub(crate) fn request(&self, op: &'static str, repo: &RepoKey) {
        if let Some(usage) = &self.usage {
            usage.store(&repo.tenant, Some(repo.graph.as_str()), op, 0);
        }
        self.requests
            .get_or_create(&RequestLabels {
                op,
                tenant: repo.tenant.to_string(),
                graph: repo.graph.to_string(),
            })
            .inc();
    }

    pub(crate) fn read(&self, repo: &RepoKey, bytes: u64) {
        if let Some(usage) = &self.usage {
            usage.store_bytes(repo, "get", bytes);
        }
        self.read_bytes
            .get_or_create(&RepoLabels {
                tenant: repo.tenant.to_string(),
                graph: repo.graph.to_string(),
            })
            .inc_by(bytes);
    }
}
