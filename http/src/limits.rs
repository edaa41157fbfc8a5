//! Request body limits, shared by the router and the forwarding middleware, and the tenant
//! limits in force.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use omnigraph_cloud_config::{LimitsConfig, TenantLimitsOverride};

/// Request body limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Every route but `/load` and `/ingest`.
    pub default: usize,
    /// `/load` and `/ingest`.
    pub load: usize,
}

/// The node's limits in force: the configured ones, with the signed bundle's `limits` laid
/// over them (docs/operations.md#limits). Admission reads them on every request; the bundle
/// sync replaces them, only once a whole bundle has been verified.
pub struct LiveLimits {
    configured: LimitsConfig,
    current: ArcSwap<LimitsConfig>,
}

impl LiveLimits {
    pub fn new(configured: LimitsConfig) -> Arc<LiveLimits> {
        Arc::new(LiveLimits {
            current: ArcSwap::from_pointee(configured.clone()),
            configured,
        })
    }

    pub(crate) fn current(&self) -> Arc<LimitsConfig> {
        self.current.load_full()
    }

    /// The configured limits with a bundle's `overrides`, checked; nothing changes yet.
    pub(crate) fn prepare(
        &self,
        overrides: &BTreeMap<String, TenantLimitsOverride>,
    ) -> Result<LimitsConfig, String> {
        self.configured
            .with_overrides(overrides)
            .map_err(|err| err.to_string())
    }

    pub(crate) fn install(&self, limits: LimitsConfig) {
        self.current.store(Arc::new(limits));
    }
}
