//! The node's roles, its leases and the maintenance policy (`[node]`, `[leases]`,
//! `[maintenance]`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::memory::{MemoryBudget, memory_budget};
use crate::parse::duration;
use crate::{ConfigError, TenantId};

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Serves the data API (reads, and writes while it holds a repo's writer lease).
    Serve,
    /// Serves the data API as a read replica: never takes a writer lease, forwards every
    /// write (docs/cluster.md).
    Read,
    /// Runs maintenance: recovery, compaction, cleanup and index builds.
    Worker,
    /// The control plane: tenant directory, provisioning, the published bundle, usage
    /// queries (docs/control-plane.md). Never on the data path.
    Control,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Which roles this node runs. Default both.
    pub roles: Vec<Role>,
    /// The holder id written into leases. Default `<hostname>-<pid>-<random>`, unique per
    /// process start; a configured id gets `-<pid>-<random>` appended all the same, so two
    /// processes never share a holder id.
    pub id: Option<String>,
    /// What the whole process may use; the cache tier's memory counts toward it.
    pub memory_budget: MemoryBudget,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Read => "read",
            Role::Worker => "worker",
            Role::Control => "control",
        }
    }
}

impl NodeIdentity {
    /// Whether the node serves the data API (as a writer or a read replica).
    pub fn serves(&self) -> bool {
        self.roles.contains(&Role::Serve) || self.roles.contains(&Role::Read)
    }

    /// Whether the node may take writer leases to write graphs it is sent.
    pub fn takes_writes(&self) -> bool {
        self.roles.contains(&Role::Serve)
    }

    pub fn works(&self) -> bool {
        self.roles.contains(&Role::Worker)
    }

    pub fn controls(&self) -> bool {
        self.roles.contains(&Role::Control)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a lease lasts without renewal. Default 30s.
    pub ttl: Duration,
    /// A holder stops acting this long before the expiry it wrote; must exceed the clock
    /// drift between nodes. Default 10s.
    pub safety_margin: Duration,
}

/// When and how the worker maintains a repo.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// Run maintenance at all (on nodes with the worker role). Default true.
    pub enabled: bool,
    /// A warm repo with new writes is compacted at least this often. Default 30s.
    pub interval: Duration,
    /// Run as soon as this many publishes have happened since the last run. Default 16.
    pub trigger_versions: u64,
    /// ...or a table has this many fragments. Default 32.
    pub trigger_fragments: u64,
    /// ...or this many request bytes were written since the last run. Default 64 MiB.
    pub trigger_bytes: u64,
    /// A worker-only node looks for repos that need it this often. Default 30s.
    pub scan_interval: Duration,
    /// After a failed run, wait at least this long before the next (doubling up to 16x).
    pub backoff: Duration,
    /// Retention of old versions.
    pub retention: Retention,
    /// Per-tenant retention.
    pub tenants: BTreeMap<TenantId, RetentionOverrides>,
}

/// Which old versions cleanup keeps: at least `keep_versions` and everything younger than
/// `keep_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Default 10; never below 3 (recovery's rollback targets).
    pub keep_versions: u32,
    /// Default 1h; a read pinned to an older version may fail once this has passed.
    pub keep_for: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOverrides {
    pub keep_versions: Option<u32>,
    pub keep_for: Option<Duration>,
}

impl MaintenanceConfig {
    pub fn retention_for(&self, tenant: &TenantId) -> Retention {
        let mut retention = self.retention;
        if let Some(overrides) = self.tenants.get(tenant) {
            retention.keep_versions = overrides.keep_versions.unwrap_or(retention.keep_versions);
            retention.keep_for = overrides.keep_for.unwrap_or(retention.keep_for);
        }
        retention
    }
}

/// The least `keep_versions` accepted: fewer can delete recovery's rollback targets.
pub const MIN_KEEP_VERSIONS: u32 = 3;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    pub roles: Vec<String>,
    pub id: Option<String>,
    pub memory_budget: Option<u64>,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            roles: vec!["serve".into(), "worker".into()],
            id: None,
            memory_budget: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeasesSection {
    pub ttl: String,
    pub safety_margin: String,
}

impl Default for LeasesSection {
    fn default() -> Self {
        LeasesSection {
            ttl: "30s".into(),
            safety_margin: "10s".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceSection {
    pub enabled: bool,
    pub interval: String,
    pub trigger_versions: u64,
    pub trigger_fragments: u64,
    pub trigger_bytes: u64,
    pub scan_interval: String,
    pub backoff: String,
    pub keep_versions: u32,
    pub keep_for: String,
    pub tenants: BTreeMap<String, RetentionSection>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    pub keep_versions: Option<u32>,
    pub keep_for: Option<String>,
}

impl Default for MaintenanceSection {
    fn default() -> Self {
        MaintenanceSection {
            enabled: true,
            interval: "30s".into(),
            trigger_versions: 16,
            trigger_fragments: 32,
            trigger_bytes: 64 * 1024 * 1024,
            scan_interval: "30s".into(),
            backoff: "30s".into(),
            keep_versions: 10,
            keep_for: "1h".into(),
            tenants: BTreeMap::new(),
        }
    }
}

pub(crate) fn validate_node(section: NodeSection) -> Result<NodeIdentity, ConfigError> {
    let mut roles = Vec::new();
    for role in &section.roles {
        let parsed = match role.as_str() {
            "serve" => Role::Serve,
            "read" => Role::Read,
            "worker" => Role::Worker,
            "control" => Role::Control,
            other => {
                return Err(ConfigError::invalid(
                    "node.roles",
                    other,
                    "\"serve\", \"read\", \"worker\" or \"control\"",
                ));
            }
        };
        if !roles.contains(&parsed) {
            roles.push(parsed);
        }
    }
    if roles.is_empty() {
        return Err(ConfigError::invalid(
            "node.roles",
            "[]",
            "at least one of \"serve\" and \"worker\"",
        ));
    }
    roles.sort();
    if roles.contains(&Role::Read) && roles.len() > 1 {
        // A replica never writes: serving writes or running maintenance (which takes writer
        // leases for cleanup) contradicts it.
        return Err(ConfigError::invalid(
            "node.roles",
            &section.roles.join(","),
            "\"read\" alone (a read replica neither writes nor maintains)",
        ));
    }
    if let Some(id) = &section.id {
        let valid = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !valid {
            return Err(ConfigError::invalid(
                "node.id",
                id,
                "1 to 64 characters of [A-Za-z0-9._-]",
            ));
        }
    }
    Ok(NodeIdentity {
        roles,
        id: section.id,
        memory_budget: memory_budget(section.memory_budget)?,
    })
}

pub(crate) fn validate_leases(section: LeasesSection) -> Result<LeaseConfig, ConfigError> {
    let ttl = duration("leases.ttl", &section.ttl, true)?;
    let safety_margin = duration("leases.safety_margin", &section.safety_margin, false)?;
    if safety_margin >= ttl / 2 {
        return Err(ConfigError::invalid(
            "leases.safety_margin",
            &section.safety_margin,
            "less than half of leases.ttl",
        ));
    }
    Ok(LeaseConfig { ttl, safety_margin })
}

pub(crate) fn validate_maintenance(
    section: MaintenanceSection,
) -> Result<MaintenanceConfig, ConfigError> {
    let keep_versions = |key: &str, value: u32| {
        if value < MIN_KEEP_VERSIONS {
            Err(ConfigError::invalid(
                key,
                &value.to_string(),
                "at least 3 (fewer can delete recovery's rollback targets)",
            ))
        } else {
            Ok(value)
        }
    };
    let positive = |key: &str, value: u64| {
        if value == 0 {
            Err(ConfigError::invalid(key, "0", "a positive number"))
        } else {
            Ok(value)
        }
    };
    let mut tenants = BTreeMap::new();
    for (tenant, overrides) in section.tenants {
        let key = |field: &str| format!("maintenance.tenants.{tenant}.{field}");
        let id = TenantId::new(&tenant).map_err(|err| {
            ConfigError::invalid("maintenance.tenants", &tenant, &err.to_string())
        })?;
        tenants.insert(
            id,
            RetentionOverrides {
                keep_versions: overrides
                    .keep_versions
                    .map(|value| keep_versions(&key("keep_versions"), value))
                    .transpose()?,
                keep_for: overrides
                    .keep_for
                    .as_deref()
                    .map(|value| duration(&key("keep_for"), value, false))
                    .transpose()?,
            },
        );
    }
    Ok(MaintenanceConfig {
        enabled: section.enabled,
        interval: duration("maintenance.interval", &section.interval, true)?,
        trigger_versions: positive("maintenance.trigger_versions", section.trigger_versions)?,
        trigger_fragments: positive("maintenance.trigger_fragments", section.trigger_fragments)?,
        trigger_bytes: positive("maintenance.trigger_bytes", section.trigger_bytes)?,
        scan_interval: duration("maintenance.scan_interval", &section.scan_interval, true)?,
        backoff: duration("maintenance.backoff", &section.backoff, true)?,
        retention: Retention {
            keep_versions: keep_versions("maintenance.keep_versions", section.keep_versions)?,
            keep_for: duration("maintenance.keep_for", &section.keep_for, false)?,
        },
        tenants,
    })
}
