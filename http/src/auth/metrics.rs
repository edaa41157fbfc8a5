//! Auth metrics: refusals by reason, JWKS refresh health, bundle state, policy denials.
//! Labels come from small fixed sets (reasons, actions) or from configuration (issuers).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

#[derive(Clone)]
pub(crate) struct AuthMetrics {
    rejections: Family<ReasonLabel, Counter>,
    jwks_refresh_failures: Family<SourceLabel, Counter>,
    jwks_last_success: Family<SourceLabel, Gauge>,
    jwks_degraded: Family<IssuerLabel, Gauge>,
    bundle_serial: Gauge,
    bundle_rejections: Family<ReasonLabel, Counter>,
    policy_denials: Family<ActionLabel, Counter>,
}

impl AuthMetrics {
    pub(crate) fn register(registry: &mut Registry) -> AuthMetrics {
        let metrics = AuthMetrics {
            rejections: Family::default(),
            jwks_refresh_failures: Family::default(),
            jwks_last_success: Family::default(),
            jwks_degraded: Family::default(),
            bundle_serial: Gauge::default(),
            bundle_rejections: Family::default(),
            policy_denials: Family::default(),
        };
        registry.register(
            "omnigraph_auth_rejections",
            "Credentials refused with 401, by the check that failed",
            metrics.rejections.clone(),
        );
        registry.register(
            "omnigraph_auth_jwks_refresh_failures",
            "Failed background refreshes of an issuer's JWKS source",
            metrics.jwks_refresh_failures.clone(),
        );
        registry.register(
            "omnigraph_auth_jwks_last_success_timestamp_seconds",
            "Unix time of the last successful refresh of an issuer's JWKS source",
            metrics.jwks_last_success.clone(),
        );
        registry.register(
            "omnigraph_auth_jwks_degraded",
            "1 while an issuer's last JWKS refresh failed and cached keys are serving",
            metrics.jwks_degraded.clone(),
        );
        registry.register(
            "omnigraph_auth_bundle_serial",
            "Serial of the signed bundle in force (0: none)",
            metrics.bundle_serial.clone(),
        );
        registry.register(
            "omnigraph_auth_bundle_rejections",
            "Bundles refused (the last good one stays in force), by reason",
            metrics.bundle_rejections.clone(),
        );
        registry.register(
            "omnigraph_auth_policy_denials",
            "Requests denied by policy (403), by action",
            metrics.policy_denials.clone(),
        );
        metrics
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
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs() as i64)
                .unwrap_or_default();
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

    pub(crate) fn policy_denied(&self, action: &str) {
        self.policy_denials
            .get_or_create(&ActionLabel {
                action: action.into(),
            })
            .inc();
    }
}
