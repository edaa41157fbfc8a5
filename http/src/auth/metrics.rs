//! Auth metrics: refusals by reason, JWKS refresh health, bundle state, and (registered
//! here, counted by the policy store) policy denials. Labels come from small fixed sets
//! (reasons, actions) or from configuration (issuers).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::policy::PolicyMetrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabel {
    issuer: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    issuer: String,
    source: String,
}

#[derive(Clone)]
pub(crate) struct AuthMetrics {
    rejections: Family<ReasonLabel, Counter>,
    jwks_refresh_failures: Family<SourceLabel, Counter>,
    jwks_last_success: Family<SourceLabel, Gauge>,
    jwks_degraded: Family<IssuerLabel, Gauge>,
    bundle_serial: Gauge,
    bundle_rejections: Family<ReasonLabel, Counter>,
    policy: PolicyMetrics,
}

impl AuthMetrics {
    /// Registers every auth metric, the policy denials last.
    pub(crate) fn register(registry: &mut Registry) -> AuthMetrics {
        let rejections: Family<ReasonLabel, Counter> = Family::default();
        let jwks_refresh_failures: Family<SourceLabel, Counter> = Family::default();
        let jwks_last_success: Family<SourceLabel, Gauge> = Family::default();
        let jwks_degraded: Family<IssuerLabel, Gauge> = Family::default();
        let bundle_serial: Gauge = Gauge::default();
        let bundle_rejections: Family<ReasonLabel, Counter> = Family::default();
        registry.register(
            "omnigraph_auth_rejections",
            "Credentials refused with 401, by the check that failed",
            rejections.clone(),
        );
        registry.register(
            "omnigraph_auth_jwks_refresh_failures",
            "Failed background refreshes of an issuer's JWKS source",
            jwks_refresh_failures.clone(),
        );
        registry.register(
            "omnigraph_auth_jwks_last_success_timestamp_seconds",
            "Unix time of the last successful refresh of an issuer's JWKS source",
            jwks_last_success.clone(),
        );
        registry.register(
            "omnigraph_auth_jwks_degraded",
            "1 while an issuer's last JWKS refresh failed and cached keys are serving",
            jwks_degraded.clone(),
        );
        registry.register(
            "omnigraph_auth_bundle_serial",
            "Serial of the signed bundle in force (0: none)",
            bundle_serial.clone(),
        );
        registry.register(
            "omnigraph_auth_bundle_rejections",
            "Bundles refused (the last good one stays in force), by reason",
            bundle_rejections.clone(),
        );
        let policy = PolicyMetrics::register(registry);
        AuthMetrics {
            rejections,
            jwks_refresh_failures,
            jwks_last_success,
            jwks_degraded,
            bundle_serial,
            bundle_rejections,
            policy,
        }
    }

    /// The policy denials counter, for the policy store.
    pub(crate) fn policy(&self) -> &PolicyMetrics {
        &self.policy
    }

    pub(crate) fn rejected(&self, reason: &str) {
        self.rejections
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    pub(crate) fn jwks_refreshed(&self, issuer: &str, source: &str, ok: bool) {
        let label = SourceLabel {
            issuer: issuer.into(),
            source: source.into(),
        };
        if ok {
            let now = (omnigraph_cloud_actors::Clock::system().wall_ms() / 1000) as i64;
            self.jwks_last_success.get_or_create(&label).set(now);
        } else {
            self.jwks_refresh_failures.get_or_create(&label).inc();
        }
    }

    pub(crate) fn jwks_degraded(&self, issuer: &str, degraded: bool) {
        self.jwks_degraded
            .get_or_create(&IssuerLabel {
                issuer: issuer.into(),
            })
            .set(i64::from(degraded));
    }

    pub(crate) fn bundle_applied(&self, serial: u64) {
        self.bundle_serial.set(serial as i64);
    }

    pub(crate) fn bundle_rejected(&self, reason: &str) {
        self.bundle_rejections
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }
}
