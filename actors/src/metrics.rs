//! Counters of the actor layer, registered into the node's Prometheus registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct ActorMetrics {
    pub(crate) active: Gauge,
    pub(crate) activations: Counter,
    pub(crate) evictions: Counter,
    pub(crate) restarts: Counter,
    pub(crate) activation_seconds: Histogram,
}

impl ActorMetrics {
    /// Creates the metrics and registers them under `omnigraph_repo_*`.
    pub fn register(registry: &mut Registry) -> ActorMetrics {
        let metrics = ActorMetrics {
            active: Gauge::default(),
            activations: Counter::default(),
            evictions: Counter::default(),
            restarts: Counter::default(),
            activation_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
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

    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            warm_repos: self.active.get().max(0) as u64,
            activations: self.activations.get(),
            evictions: self.evictions.get(),
            restarts: self.restarts.get(),
        }
    }
}

/// A point-in-time view of the registry, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryStats {
    pub warm_repos: u64,
    pub activations: u64,
    pub evictions: u64,
    pub restarts: u64,
}
