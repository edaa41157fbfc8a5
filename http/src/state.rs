use std::sync::Arc;

use omnigraph_cloud_actors::Registry;
use prometheus_client::registry::Registry as MetricsRegistry;

use crate::auth::{Principal, TokenVerifier};
use crate::error::ApiError;
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
    /// Whether the data API is served (the node has the `serve` role).
    pub serves_data: bool,
}

/// Request body limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub default: usize,
    pub load: usize,
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
        AppState {
            registry,
            auth,
            policy,
            metrics,
            metrics_registry: Arc::new(metrics_registry),
            limits,
            serves_data: true,
        }
    }
}

impl AppState {
    /// The Cedar decision for `principal` doing `access`; a 403 when denied.
    pub fn authorize(&self, principal: &Principal, access: Access<'_>) -> Result<(), ApiError> {
        self.policy.authorize(principal, access)
    }
}
