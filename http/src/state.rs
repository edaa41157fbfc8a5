use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use omnigraph_cloud_actors::Registry;
use omnigraph_cloud_cluster::membership::Membership;
use prometheus_client::registry::Registry as MetricsRegistry;

use crate::admission::{Admission, AdmissionMetrics};
use crate::auth::{Principal, TokenVerifier};
use crate::error::ApiError;
use crate::forward::{ForwardMetrics, ForwardSetup, Forwarding};
pub use crate::limits::{BodyLimits, LiveLimits};
use crate::metrics::HttpMetrics;
use crate::policy::{Access, PolicyStore};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub auth: Arc<TokenVerifier>,
    pub policy: Arc<PolicyStore>,
    pub(crate) metrics: HttpMetrics,
    pub(crate) metrics_registry: Arc<MetricsRegistry>,
    pub(crate) limits: BodyLimits,
    /// Admission of requests per tenant and for the node (`crate::admission`).
    pub(crate) admission: Arc<Admission>,
    /// Whether the data API is served (the node has the `serve` role).
    pub serves_data: bool,
    /// What `GET /readyz` answers.
    pub readiness: Arc<Readiness>,
    /// Whether and where writes this node may not make are forwarded (`crate::forward`).
    pub(crate) forwarding: Arc<Forwarding>,
    /// The cluster's gossip, when this node takes part in one (`GET /admin/cluster`).
    pub membership: Option<Arc<Membership>>,
    /// Where admitted requests are counted as their tenant's usage, when the node meters.
    pub usage: Option<Arc<omnigraph_cloud_actors::usage::UsageMeter>>,
}

/// Whether the node should be sent requests: not before its warm set is open again (or
/// [`Readiness::STARTUP_WAIT`] has passed), and no longer once it drains.
pub struct Readiness {
    started: Instant,
    draining: AtomicBool,
}

/// What `/readyz` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Ready,
    /// Warming its recorded warm set.
    Starting,
    /// Shutting down: finishing what it accepted.
    Draining,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Starting => "starting",
            NodeState::Draining => "draining",
        }
    }
}

impl Readiness {
    /// The longest a start waits for its warm set before it is ready anyway.
    pub const STARTUP_WAIT: Duration = Duration::from_secs(30);

    pub fn new() -> Readiness {
        Readiness {
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    /// From now on, `/readyz` answers 503.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn status(&self, registry: &Registry) -> NodeState {
        if self.draining.load(Ordering::SeqCst) {
            NodeState::Draining
        } else if registry.warm_set_restored() || self.started.elapsed() >= Self::STARTUP_WAIT {
            NodeState::Ready
        } else {
            NodeState::Starting
        }
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}

impl AppState {
    /// Assembles the state. HTTP metrics are registered into `metrics_registry`, which then
    /// becomes read-only and is what `/metrics` renders.
    pub fn new(
        registry: Registry,
        auth: Arc<TokenVerifier>,
        policy: Arc<PolicyStore>,
        mut metrics_registry: MetricsRegistry,
        limits: BodyLimits,
    ) -> AppState {
        let metrics = HttpMetrics::register(&mut metrics_registry);
        let forwarding = Forwarding::disabled(ForwardMetrics::register(&mut metrics_registry));
        let admission = Admission::unlimited(AdmissionMetrics::register(&mut metrics_registry));
        AppState {
            registry,
            auth,
            policy,
            metrics,
            metrics_registry: Arc::new(metrics_registry),
            limits,
            admission: Arc::new(admission),
            serves_data: true,
            readiness: Arc::new(Readiness::new()),
            forwarding: Arc::new(forwarding),
            membership: None,
            usage: None,
        }
    }

    /// Admits requests within `limits` (see docs/operations.md#limits); without this call
    /// every request is admitted.
    pub fn set_limits(&mut self, limits: Arc<LiveLimits>) {
        let metrics = self.admission.metrics.clone();
        self.admission = Arc::new(Admission::new(limits, metrics));
    }

    /// Forwards writes this node may not make to the graph's writer-lease holder (see
    /// docs/cluster.md). An error says what is wrong with `setup`.
    pub fn enable_forwarding(&mut self, setup: ForwardSetup) -> Result<(), String> {
        let metrics = self.forwarding.metrics.clone();
        let reads = crate::forward::ReadRouting {
            verifier: Arc::clone(&self.auth),
            body_limit: self.limits.default,
        };
        self.forwarding = Arc::new(Forwarding::new(setup, metrics, reads)?);
        Ok(())
    }
}

impl AppState {
    /// The Cedar decision for `principal` doing `access`; a 403 when denied.
    pub fn authorize(&self, principal: &Principal, access: Access<'_>) -> Result<(), ApiError> {
        self.policy.authorize(principal, access)
    }
}
