//! `[limits]`: admission of requests per tenant and for the whole node, and the deadline of
//! reads (docs/operations.md#limits).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::memory::MemoryBudget;
use crate::parse::{duration, positive_size};
use crate::{ConfigError, ServerConfig, TenantId};

/// The node's limits: its own, a tenant's by default, and the tenants configured apart.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub node: NodeLimits,
    /// What a tenant without an entry of its own gets.
    pub tenant: TenantLimits,
    /// `[limits.tenants.<tenant>]`, each merged over the defaults.
    pub tenants: BTreeMap<TenantId, TenantLimits>,
    /// The largest request body accepted: no byte limit may be below it.
    pub largest_body: usize,
}

/// Past these the node sheds load with 503, before the node itself is at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    /// Requests in flight on the node. Default 256.
    pub max_concurrent_requests: usize,
    /// Request body bytes in flight on the node. Default a quarter of `node.memory_budget`.
    pub max_inflight_bytes: usize,
    /// Reads running at once; more wait, and a freed slot goes to the tenant with the fewest
    /// running. Default one per core.
    pub max_concurrent_reads: usize,
}

/// One tenant's share of a node: past these its requests get 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// Sustained requests per second; `None` (configured as 0) for no rate limit. Default
    /// 1000.
    pub requests_per_second: Option<u32>,
    /// Requests that may arrive at once above the rate. Default twice the rate.
    pub burst: u32,
    /// Requests in flight. Default 256.
    pub max_concurrent_requests: usize,
    /// Request body bytes in flight. Default the node's.
    pub max_inflight_bytes: usize,
    /// How long a read may run before it is cancelled. Default 30s.
    pub query_timeout: Duration,
}

impl LimitsConfig {
    /// The limits of `tenant`.
    pub fn for_tenant(&self, tenant: &TenantId) -> &TenantLimits {
        self.tenants.get(tenant).unwrap_or(&self.tenant)
    }

    /// These limits with `overrides` (a signed bundle's `limits`, by tenant) laid over them:
    /// a tenant's keys there win over its configured ones, the keys it leaves out keep them.
    /// Checked as the file's are; an error names the key as `bundle.limits.<tenant>.<key>`.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, TenantLimitsOverride>,
    ) -> Result<LimitsConfig, ConfigError> {
        let inflight = byte_limit(self.largest_body);
        let mut merged = self.clone();
        for (name, keys) in overrides {
            let id = TenantId::new(name)
                .map_err(|err| ConfigError::invalid("bundle.limits", name, &err.to_string()))?;
            let base = *self.for_tenant(&id);
            let limits = merge_tenant(
                &format!("bundle.limits.{name}"),
                &base,
                keys.clone(),
                &inflight,
            )?;
            merged.tenants.insert(id, limits);
        }
        Ok(merged)
    }
}

/// The check of a byte limit: positive, and at least the largest request body accepted (a
/// request larger than a byte limit could never be admitted).
fn byte_limit(largest_body: usize) -> impl Fn(&str, u64) -> Result<usize, ConfigError> {
    move |key: &str, value: u64| {
        let bytes = positive_size(key, value)?;
        if bytes < largest_body {
            return Err(ConfigError::invalid(
                key,
                &value.to_string(),
                &format!("at least the largest request body accepted ({largest_body} bytes)"),
            ));
        }
        Ok(bytes)
    }
}

/// A tenant's `overrides` over `base`; one that sets only its rate gets twice that as its
/// burst, as by default.
fn merge_tenant(
    prefix: &str,
    base: &TenantLimits,
    overrides: TenantLimitsOverride,
    inflight: &dyn Fn(&str, u64) -> Result<usize, ConfigError>,
) -> Result<TenantLimits, ConfigError> {
    let overrides = TenantLimitsOverride {
        burst: overrides.burst.or(overrides
            .requests_per_second
            .is_none()
            .then_some(base.burst as u64)),
        ..overrides
    };
    merge(prefix, base, overrides, inflight)
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub requests_per_second: u64,
    /// Unset: twice `requests_per_second`.
    pub burst: Option<u64>,
    pub max_concurrent_requests: u64,
    /// Unset: the node's.
    pub max_inflight_bytes: Option<u64>,
    pub query_timeout: String,
    pub node: NodeLimitsSection,
    pub tenants: BTreeMap<String, TenantLimitsOverride>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeLimitsSection {
    pub max_concurrent_requests: u64,
    /// Unset: a quarter of `node.memory_budget`.
    pub max_inflight_bytes: Option<u64>,
    /// Unset: the number of cores.
    pub max_concurrent_reads: Option<u64>,
}

/// A tenant's overrides; unset keys keep the defaults of `[limits]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitsOverride {
    pub requests_per_second: Option<u64>,
    pub burst: Option<u64>,
    pub max_concurrent_requests: Option<u64>,
    pub max_inflight_bytes: Option<u64>,
    pub query_timeout: Option<String>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            requests_per_second: 1000,
            burst: None,
            max_concurrent_requests: 256,
            max_inflight_bytes: None,
            query_timeout: "30s".into(),
            node: NodeLimitsSection::default(),
            tenants: BTreeMap::new(),
        }
    }
}

impl Default for NodeLimitsSection {
    fn default() -> Self {
        NodeLimitsSection {
            max_concurrent_requests: 256,
            max_inflight_bytes: None,
            max_concurrent_reads: None,
        }
    }
}

pub(crate) fn validate_limits(
    section: LimitsSection,
    budget: &MemoryBudget,
    server: &ServerConfig,
) -> Result<LimitsConfig, ConfigError> {
    let largest_body = server.body_limit_bytes.max(server.load_body_limit_bytes);
    let inflight = byte_limit(largest_body);
    let node = NodeLimits {
        max_concurrent_requests: positive_size(
            "limits.node.max_concurrent_requests",
            section.node.max_concurrent_requests,
        )?,
        max_inflight_bytes: match section.node.max_inflight_bytes {
            Some(bytes) => inflight("limits.node.max_inflight_bytes", bytes)?,
            None => (budget.bytes / 4).max(largest_body),
        },
        max_concurrent_reads: match section.node.max_concurrent_reads {
            Some(reads) => positive_size("limits.node.max_concurrent_reads", reads)?,
            None => std::thread::available_parallelism().map_or(2, usize::from),
        },
    };
    let defaults = TenantLimitsOverride {
        requests_per_second: Some(section.requests_per_second),
        burst: section.burst,
        max_concurrent_requests: Some(section.max_concurrent_requests),
        max_inflight_bytes: section.max_inflight_bytes,
        query_timeout: Some(section.query_timeout),
    };
    let base = TenantLimits {
        requests_per_second: None,
        burst: 1,
        max_concurrent_requests: node.max_concurrent_requests,
        max_inflight_bytes: node.max_inflight_bytes,
        query_timeout: Duration::from_secs(30),
    };
    let tenant = merge("limits", &base, defaults, &inflight)?;
    let mut tenants = BTreeMap::new();
    for (name, overrides) in section.tenants {
        let id = TenantId::new(&name)
            .map_err(|err| ConfigError::invalid("limits.tenants", &name, &err.to_string()))?;
        let prefix = format!("limits.tenants.{name}");
        tenants.insert(id, merge_tenant(&prefix, &tenant, overrides, &inflight)?);
    }
    Ok(LimitsConfig {
        node,
        tenant,
        tenants,
        largest_body,
    })
}

/// `overrides` over `base`, each key checked under `prefix`.
fn merge(
    prefix: &str,
    base: &TenantLimits,
    overrides: TenantLimitsOverride,
    inflight: &dyn Fn(&str, u64) -> Result<usize, ConfigError>,
) -> Result<TenantLimits, ConfigError> {
    let key = |field: &str| format!("{prefix}.{field}");
    let requests_per_second = match overrides.requests_per_second {
        None => base.requests_per_second,
        Some(0) => None,
        Some(rate) => Some(u32::try_from(rate).map_err(|_| {
            ConfigError::invalid(
                &key("requests_per_second"),
                &rate.to_string(),
                "at most 2^32 - 1",
            )
        })?),
    };
    let burst = match overrides.burst {
        Some(0) => {
            return Err(ConfigError::invalid(&key("burst"), "0", "at least 1"));
        }
        Some(burst) => u32::try_from(burst).map_err(|_| {
            ConfigError::invalid(&key("burst"), &burst.to_string(), "at most 2^32 - 1")
        })?,
        None => requests_per_second.map_or(base.burst, |rate| rate.saturating_mul(2)),
    };
    Ok(TenantLimits {
        requests_per_second,
        burst,
        max_concurrent_requests: match overrides.max_concurrent_requests {
            Some(value) => positive_size(&key("max_concurrent_requests"), value)?,
            None => base.max_concurrent_requests,
        },
        max_inflight_bytes: match overrides.max_inflight_bytes {
            Some(value) => inflight(&key("max_inflight_bytes"), value)?,
            None => base.max_inflight_bytes,
        },
        query_timeout: match overrides.query_timeout {
            Some(raw) => duration(&key("query_timeout"), &raw, true)?,
            None => base.query_timeout,
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::{NodeConfig, TenantId};

    fn load(toml: &str) -> Result<NodeConfig, String> {
        let toml = format!("[node]\nmemory_budget = 1073741824\n{toml}");
        NodeConfig::load(Some(&toml), std::iter::empty()).map_err(|err| err.to_string())
    }

    #[test]
    fn defaults_and_overrides_merge_per_tenant() {
        let config = load(
            "[limits]\nquery_timeout = \"10s\"\n\
             [limits.tenants.acme]\nrequests_per_second = 5\n\
             [limits.tenants.bulk]\nrequests_per_second = 0\nmax_concurrent_requests = 4\n",
        )
        .unwrap();
        let limits = &config.limits;
        assert_eq!(limits.node.max_concurrent_requests, 256);
        assert_eq!(limits.node.max_inflight_bytes, 256 * 1024 * 1024);
        let other = limits.for_tenant(&TenantId::new("other").unwrap());
        assert_eq!(other.requests_per_second, Some(1000));
        assert_eq!(other.burst, 2000);
        assert_eq!(other.max_inflight_bytes, limits.node.max_inflight_bytes);
        assert_eq!(other.query_timeout.as_secs(), 10);
        let acme = limits.for_tenant(&TenantId::new("acme").unwrap());
        assert_eq!((acme.requests_per_second, acme.burst), (Some(5), 10));
        assert_eq!(
            acme.query_timeout.as_secs(),
            10,
            "the default's, not the base's"
        );
        let bulk = limits.for_tenant(&TenantId::new("bulk").unwrap());
        assert_eq!(bulk.requests_per_second, None);
        assert_eq!(bulk.max_concurrent_requests, 4);
    }

    #[test]
    fn limits_that_could_never_admit_a_request_are_refused() {
        for (toml, key) in [
            (
                "[limits.tenants.acme]\nburst = 0\n",
                "limits.tenants.acme.burst",
            ),
            (
                "[limits]\nmax_concurrent_requests = 0\n",
                "limits.max_concurrent_requests",
            ),
            (
                "[limits.node]\nmax_inflight_bytes = 1024\n",
                "limits.node.max_inflight_bytes",
            ),
            (
                "[limits.tenants.acme]\nmax_inflight_bytes = 1048576\n",
                "limits.tenants.acme.max_inflight_bytes",
            ),
            ("[limits.tenants.\"a/b\"]\n", "limits.tenants"),
            ("[limits]\nquery_timeout = \"0s\"\n", "limits.query_timeout"),
        ] {
            let err = load(toml).unwrap_err();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }
}
