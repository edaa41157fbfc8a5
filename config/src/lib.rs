//! Typed configuration for an omnigraph-cloud node.
//!
//! A node reads an optional TOML file, applies `OMNIGRAPH_CLOUD_*` overrides handed in as a
//! map (this crate never reads the process environment itself), and validates the result into
//! [`NodeConfig`], the only form the rest of the workspace sees. Every error names the key, the
//! offending value and what is allowed.
//!
//! Depends on: nothing of ours. Must not know: actors, http, runtime, the engine.

mod auth;
mod cache;
mod cluster;
mod control;
mod env;
mod error;
mod file;
mod ids;
mod limits;
mod maintenance;
mod memory;
mod parse;
mod storage_root;
mod usage;

use std::net::SocketAddr;
use std::time::Duration;

pub use auth::{
    AuthConfig, AuthMode, BundleConfig, BundleSource, JwtAlgorithm, OidcIssuerConfig,
    ROOT_BUNDLE_PATH, StaticTokenConfig, TenantSource, TokenEntry, TokenSecret,
    validate_token_entries,
};
pub use cache::CacheConfig;
pub use cluster::{ClusterConfig, GossipConfig};
pub use control::ControlConfig;
pub use env::ENV_PREFIX;
pub use error::ConfigError;
pub use file::{DEFAULT_CONFIG_TOML, FileConfig, WritesOverride};
pub use ids::{
    ACTOR_ID_RULE, ActorId, BRANCH_NAME_MAX, BRANCH_NAME_PATTERN, BRANCH_NAME_RULE, BranchName,
    COMMIT_ID_PATTERN, COMMIT_ID_RULE, CommitId, GRAPH_ID_PATTERN, GraphId, IdError, NameError,
    TenantId,
};
pub use limits::{LimitsConfig, NodeLimits, TenantLimits, TenantLimitsOverride};
pub use maintenance::{
    LeaseConfig, MIN_KEEP_VERSIONS, MaintenanceConfig, NodeIdentity, Retention, RetentionOverrides,
    Role,
};
pub use memory::{BudgetSource, MemoryBudget};
pub use storage_root::StorageRoot;
pub use usage::UsageConfig;

/// The validated configuration of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub node: NodeIdentity,
    pub leases: LeaseConfig,
    pub maintenance: MaintenanceConfig,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub actors: ActorConfig,
    pub writes: WriteConfig,
    pub cache: CacheConfig,
    pub limits: LimitsConfig,
    pub cluster: ClusterConfig,
    pub auth: AuthConfig,
    pub usage: UsageConfig,
    pub control: ControlConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address the HTTP API listens on. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// The operator listener, serving only `GET /metrics`. Default `127.0.0.1:9091`; `None`
    /// (`"off"`) for none. The public listener does not serve metrics.
    pub metrics_bind: Option<SocketAddr>,
    /// Largest request body accepted on every route but load/ingest. Default 1 MiB.
    pub body_limit_bytes: usize,
    /// Largest request body accepted on `/load` and `/ingest`. Default 32 MiB.
    pub load_body_limit_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests. Default 30s.
    pub shutdown_grace: Duration,
    /// At shutdown, how long the node keeps serving after `/readyz` turned 503. Default 0s.
    pub drain_delay: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Where every tenant's graphs live. Default `file://./omnigraph-data`.
    pub root: StorageRoot,
    /// Skips the boot-time check that the store enforces conditional writes. Default false;
    /// only for stores known to be good (a warning is logged).
    pub skip_probe: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActorConfig {
    /// A repo with no request for this long is evicted (scale-to-zero). Default 10m.
    pub idle_timeout: Duration,
    /// The longest a caller waits for its repo actor to answer a write. Default 10m.
    pub call_timeout: Duration,
    /// Most graphs warm on the node at once: activating one more first evicts the least
    /// recently used. Default 1024.
    pub max_warm_graphs: usize,
}

/// How writes to one graph are coalesced into shared publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteConfig {
    /// Coalesce concurrent insert-only mutations into one publish. Default true.
    pub coalesce: bool,
    /// Most writes in one batch. Default 256.
    pub max_batch_writes: usize,
    /// Most request bytes in one batch. Default 4 MiB.
    pub max_batch_bytes: usize,
    /// Writes queued per graph beyond which new writes get 429. Default 4096.
    pub max_queue: usize,
    /// Request bytes queued per graph beyond which new writes get 429 (a write that finds the
    /// queue empty is always taken). Default 64 MiB.
    pub max_queue_bytes: usize,
    /// Fixed wait before publishing a batch, to gather more writes. Default 0: none, but after
    /// a publish of several writes the next waits briefly for the writers it answered.
    pub max_wait: Duration,
    /// Per-tenant overrides of the values above.
    pub tenants: std::collections::BTreeMap<TenantId, WriteOverrides>,
}

/// A tenant's overrides of [`WriteConfig`]; unset fields keep the node's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOverrides {
    pub coalesce: Option<bool>,
    pub max_batch_writes: Option<usize>,
    pub max_batch_bytes: Option<usize>,
    pub max_queue: Option<usize>,
    pub max_queue_bytes: Option<usize>,
    pub max_wait: Option<Duration>,
}

impl WriteConfig {
    /// The settings in force for `tenant`'s graphs.
    pub fn for_tenant(&self, tenant: &TenantId) -> WriteConfig {
        let mut effective = WriteConfig {
            tenants: Default::default(),
            ..self.clone()
        };
        if let Some(overrides) = self.tenants.get(tenant) {
            effective.coalesce = overrides.coalesce.unwrap_or(effective.coalesce);
            effective.max_batch_writes = overrides
                .max_batch_writes
                .unwrap_or(effective.max_batch_writes);
            effective.max_batch_bytes = overrides
                .max_batch_bytes
                .unwrap_or(effective.max_batch_bytes);
            effective.max_queue = overrides.max_queue.unwrap_or(effective.max_queue);
            effective.max_queue_bytes = overrides
                .max_queue_bytes
                .unwrap_or(effective.max_queue_bytes);
            effective.max_wait = overrides.max_wait.unwrap_or(effective.max_wait);
        }
        effective
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter directive; `RUST_LOG` wins when set. Default `info,lance=warn`.
    pub filter: String,
    /// `text` (default) or `json` lines.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl NodeConfig {
    /// Parses an optional TOML document, applies environment overrides and validates.
    ///
    /// `env` is every `(name, value)` pair of the environment; names without the
    /// [`ENV_PREFIX`] are ignored.
    pub fn load(
        toml_source: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<NodeConfig, ConfigError> {
        let mut document: toml::Table = match toml_source {
            Some(source) => toml::from_str(source).map_err(|err| ConfigError::Parse {
                message: err.to_string(),
            })?,
            None => toml::Table::new(),
        };
        env::apply_overrides(&mut document, env)?;
        FileConfig::deserialize_table(document)?.validate()
    }

    /// The configuration used when no file and no overrides are given.
    pub fn default_config() -> NodeConfig {
        NodeConfig::load(None, std::iter::empty()).expect("built-in defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_describe_a_local_single_node() {
        let config = NodeConfig::default_config();
        assert_eq!(config.server.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.server.body_limit_bytes, 1024 * 1024);
        assert_eq!(config.server.load_body_limit_bytes, 32 * 1024 * 1024);
        assert_eq!(config.actors.idle_timeout, Duration::from_secs(600));
        assert!(
            matches!(config.storage.root, StorageRoot::File(ref p) if p.ends_with("omnigraph-data"))
        );
        assert_eq!(config.auth.mode, AuthMode::None);
    }

    #[test]
    fn printed_default_file_parses_to_the_defaults() {
        let from_text = NodeConfig::load(Some(DEFAULT_CONFIG_TOML), std::iter::empty()).unwrap();
        assert_eq!(from_text, NodeConfig::default_config());
    }

    #[test]
    fn env_overrides_win_over_the_file() {
        let config = NodeConfig::load(
            Some("[server]\nbind = \"127.0.0.1:9000\"\n"),
            env(&[
                ("OMNIGRAPH_CLOUD_SERVER__BIND", "127.0.0.1:9100"),
                ("OMNIGRAPH_CLOUD_ACTORS__IDLE_TIMEOUT", "5s"),
                ("OMNIGRAPH_CLOUD_SERVER__BODY_LIMIT_BYTES", "2048"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.bind, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(config.actors.idle_timeout, Duration::from_secs(5));
        assert_eq!(config.server.body_limit_bytes, 2048);
    }

    #[test]
    fn misspelt_key_is_named_in_the_error() {
        let err = NodeConfig::load(Some("[server]\nbnid = \"x\"\n"), std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bnid"), "{err}");
    }

    #[test]
    fn misspelt_env_key_is_named_in_the_error() {
        let err = NodeConfig::load(None, env(&[("OMNIGRAPH_CLOUD_SERVER__BINDD", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bindd"), "{err}");
    }

    #[test]
    fn bad_values_name_key_value_and_what_is_allowed() {
        let cases = [
            ("[server]\nbind = \"nowhere\"", "server.bind", "nowhere"),
            ("[storage]\nroot = \"ftp://x\"", "storage.root", "ftp://x"),
            (
                "[actors]\nidle_timeout = \"soon\"",
                "actors.idle_timeout",
                "soon",
            ),
            (
                "[actors]\nidle_timeout = \"0s\"",
                "actors.idle_timeout",
                "0s",
            ),
            ("[auth]\nmode = \"magic\"", "auth.mode", "magic"),
            ("[log]\nformat = \"xml\"", "log.format", "xml"),
            ("[cache]\nmemory_bytes = 1024", "cache.memory_bytes", "1024"),
            (
                "[server]\nbody_limit_bytes = 0",
                "server.body_limit_bytes",
                "0",
            ),
        ];
        for (source, key, value) in cases {
            let err = NodeConfig::load(Some(source), std::iter::empty())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{source}: {err}");
            assert!(err.contains(value), "{source}: {err}");
            assert!(err.contains("expected"), "{source}: {err}");
        }
    }

    #[test]
    fn write_limits_can_be_overridden_per_tenant() {
        let config = NodeConfig::load(
            Some("[writes]\nmax_queue = 100\n[writes.tenants.acme]\nmax_queue = 5\ncoalesce = false\n"),
            std::iter::empty(),
        )
        .unwrap();
        let acme = config.writes.for_tenant(&TenantId::new("acme").unwrap());
        assert_eq!((acme.max_queue, acme.coalesce), (5, false));
        let other = config.writes.for_tenant(&TenantId::new("other").unwrap());
        assert_eq!((other.max_queue, other.coalesce), (100, true));
        let err = NodeConfig::load(
            Some("[writes.tenants.acme]\nmax_queue = 0\n"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("writes.tenants.acme.max_queue"), "{err}");
    }

    #[test]
    fn roles_leases_and_retention_are_validated() {
        let config = NodeConfig::default_config();
        assert!(config.node.serves() && config.node.works());
        let worker = NodeConfig::load(
            Some("[node]\nroles = [\"worker\"]\n[maintenance]\nkeep_versions = 4\n[maintenance.tenants.acme]\nkeep_versions = 7\nkeep_for = \"0s\"\n"),
            std::iter::empty(),
        )
        .unwrap();
        assert!(!worker.node.serves() && worker.node.works());
        let replica =
            NodeConfig::load(Some("[node]\nroles = [\"read\"]"), std::iter::empty()).unwrap();
        assert!(replica.node.serves() && !replica.node.takes_writes() && !replica.node.works());
        let acme = worker
            .maintenance
            .retention_for(&TenantId::new("acme").unwrap());
        assert_eq!((acme.keep_versions, acme.keep_for), (7, Duration::ZERO));
        let other = worker
            .maintenance
            .retention_for(&TenantId::new("other").unwrap());
        assert_eq!(
            (other.keep_versions, other.keep_for),
            (4, Duration::from_secs(3600))
        );
        let cases = [
            ("[node]\nroles = [\"reader\"]", "node.roles"),
            ("[node]\nroles = [\"read\", \"serve\"]", "node.roles"),
            ("[node]\nroles = [\"read\", \"worker\"]", "node.roles"),
            ("[node]\nroles = [\"control\"]", "node.roles"),
            ("[node]\nroles = []", "node.roles"),
            ("[node]\nid = \"a b\"", "node.id"),
            ("[node]\nmemory_budget = 1048576", "node.memory_budget"),
            (
                "[node]\nmemory_budget = 268435456\n[cache]\nmemory_bytes = 268435456",
                "cache.memory_bytes",
            ),
            (
                "[leases]\nttl = \"10s\"\nsafety_margin = \"5s\"",
                "leases.safety_margin",
            ),
            (
                "[maintenance]\nkeep_versions = 2",
                "maintenance.keep_versions",
            ),
            (
                "[maintenance.tenants.acme]\nkeep_versions = 1",
                "maintenance.tenants.acme.keep_versions",
            ),
        ];
        for (source, key) in cases {
            let err = NodeConfig::load(Some(source), std::iter::empty())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{source}: {err}");
        }
    }

    #[test]
    fn static_mode_requires_a_token_source() {
        let err = NodeConfig::load(Some("[auth]\nmode = \"static\""), std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.tokens"), "{err}");
    }

    #[test]
    fn tokens_select_static_mode_and_are_validated() {
        let config = NodeConfig::load(
            Some("[[auth.tokens]]\ntoken = \"s3cret\"\nactor = \"alice\"\ntenant = \"acme\"\n"),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(config.auth.mode, AuthMode::Static);
        assert_eq!(config.auth.tokens[0].tenant.as_str(), "acme");

        let err = NodeConfig::load(
            Some("[[auth.tokens]]\ntoken = \"s\"\nactor = \"a\"\ntenant = \"_sys\"\n"),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("auth.tokens[0].tenant"), "{err}");
    }

    #[test]
    fn unauthenticated_public_bind_needs_an_explicit_setting() {
        let err = NodeConfig::load(
            Some("[server]\nbind = \"0.0.0.0:8080\""),
            std::iter::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("auth.mode"), "{err}");
        let explicit = NodeConfig::load(
            Some("[server]\nbind = \"0.0.0.0:8080\"\n[auth]\nmode = \"none\""),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(explicit.auth.mode, AuthMode::None);
    }
}
