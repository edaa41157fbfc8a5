//! The configuration file as written by people, and its validation into [`NodeConfig`].

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::auth::{AuthSection, validate_auth};
use crate::cache::{CacheSection, validate_cache};
use crate::cluster::{ClusterSection, validate_cluster};
use crate::control::{ControlSection, validate_control};
use crate::limits::{LimitsSection, validate_limits};
use crate::maintenance::{
    LeasesSection, MaintenanceSection, NodeSection, validate_leases, validate_maintenance,
    validate_node,
};
use crate::parse::{duration, positive_size};
use crate::usage::{UsageSection, validate_usage};
use crate::{
    ActorConfig, ConfigError, LogConfig, LogFormat, NodeConfig, ServerConfig, StorageConfig,
    StorageRoot, TenantId, WriteConfig, WriteOverrides,
};

/// The file printed by `omnigraph-cloud config default`: every key with its default value.
pub const DEFAULT_CONFIG_TOML: &str = r#"# omnigraph-cloud node configuration.
# Every key is optional; the values below are the defaults.
# Any key can be overridden from the environment: OMNIGRAPH_CLOUD_<SECTION>__<KEY>,
# e.g. OMNIGRAPH_CLOUD_SERVER__BIND=0.0.0.0:8080.

[node]
# "serve" answers the data API; "worker" runs maintenance (recovery, compaction, cleanup,
# index builds) under leases. A worker-only node serves no data API. See docs/operations.md.
# ["read"] alone: a read replica that never takes a writer lease and forwards every write.
roles = ["serve", "worker"]
# Holder id written into leases; "-<pid>-<random>" is appended. Default: the hostname.
# When set, the graphs warm at eviction and shutdown are recorded and opened again at the
# next start.
# id = "node-a"
# Bytes the whole process may use; the cache's memory tier may take at most half of it.
# Default: 80% of the container's memory limit (cgroup), else of the machine's memory.
# memory_budget = 4294967296

[server]
# Address the HTTP API listens on.
bind = "127.0.0.1:8080"
# The operator listener: GET /metrics (Prometheus) and nothing else, without a token. Its
# series name tenants and graphs, so keep it on loopback or a private network. "off" for none.
metrics_bind = "127.0.0.1:9091"
# Largest accepted request body, and the larger limit for /load and /ingest.
body_limit_bytes = 1048576
load_body_limit_bytes = 33554432
# How long a graceful shutdown (SIGTERM, Ctrl-C) waits for in-flight requests.
shutdown_grace = "30s"
# At shutdown, how long the node keeps serving after GET /readyz turned 503, before it stops
# accepting connections: set it to the load balancer's deregistration delay.
drain_delay = "0s"

[storage]
# file:///abs/path or file://./relative (local disk, the embedded default),
# s3://bucket/prefix (AWS_* variables, AWS_ENDPOINT_URL_S3 for S3-compatible stores),
# memory:// (ephemeral, for tests: gone when the process exits).
root = "file://./omnigraph-data"
# At start the node checks that the store enforces conditional writes (If-None-Match,
# If-Match) and refuses to start if not. Skip only for a store known to be good.
skip_probe = false

[actors]
# A graph with no request for this long is evicted from memory (scale-to-zero).
idle_timeout = "10m"
# The longest a caller waits for a graph's actor to answer a write.
call_timeout = "10m"
# Most graphs warm at once: opening one more first evicts the least recently used one (a
# graph with requests in flight is never evicted; if all are busy the request gets 503).
# Graphs are also evicted, least recently used first, while the process's resident memory
# is above 90% of node.memory_budget.
max_warm_graphs = 1024

[leases]
# Leases live in {root}/_system/leases/. A lease not renewed for `ttl` may be taken over;
# its holder stops acting `safety_margin` before that (which must exceed clock drift).
ttl = "30s"
safety_margin = "10s"

[maintenance]
# Nodes with the worker role maintain repos: optimize (compaction, index builds) and
# cleanup of old versions, each under the repo's compaction lease.
enabled = true
# A warm repo with new writes is checked this often...
interval = "30s"
# ...and at once when any of these is reached since its last run.
trigger_versions = 16
trigger_fragments = 32
trigger_bytes = 67108864
# A worker-only node looks for repos to maintain this often (one listing of the leases).
scan_interval = "30s"
# Wait after a failed run (doubling, at most 16x).
backoff = "30s"
# Cleanup keeps at least keep_versions versions of every table and everything younger than
# keep_for. keep_versions is at least 3.
keep_versions = 10
keep_for = "1h"
# [maintenance.tenants.acme]
# keep_versions = 20
# keep_for = "24h"

[writes]
# Concurrent writes to one graph are coalesced: while one publish is in flight, arriving
# insert-only mutations of the same branch and actor gather into the next, which commits
# them together. Each caller still gets its own answer, after its write is durable.
coalesce = true
# Bounds of one batch.
max_batch_writes = 256
max_batch_bytes = 4194304
# Writes queued per graph beyond this count, or these request bytes, are refused with 429
# and Retry-After (a write that finds the queue empty is always taken).
max_queue = 4096
max_queue_bytes = 67108864
# Optional fixed wait before a batch is published, to gather more writes. 0s: none, but
# after a publish of several writes the next waits briefly for the writers it answered.
max_wait = "0s"
# Any of these can be overridden per tenant:
# [writes.tenants.acme]
# max_queue = 512

[limits]
# Admission per tenant, after authentication and before any engine work: past these a
# tenant's requests get 429 with Retry-After. Requests per second (0: no rate limit), the
# burst above it (default twice the rate), requests in flight, request bytes in flight
# (default the node's), and how long a read may run before it is cancelled.
requests_per_second = 1000
max_concurrent_requests = 256
query_timeout = "30s"
# Past the node's own bounds every tenant gets 503 with Retry-After. Its bytes in flight
# default to a quarter of node.memory_budget. Reads beyond max_concurrent_reads (default one
# per core) wait, within their deadline, and a freed slot goes to the tenant with the fewest
# reads running: a busy tenant cannot keep the others off the node's cores.
# [limits.node]
# max_concurrent_requests = 256
# max_concurrent_reads = 8
# Any of the tenant keys can be set per tenant:
# [limits.tenants.acme]
# requests_per_second = 50

[cache]
# Reads of object storage go through a node-wide cache (docs/cache.md): immutable Lance files
# by 64 KiB block on every node; listings and the engine's text files only on the node that
# holds a graph's writer lease, invalidated by its own writes.
enabled = true
# The memory tier, in bytes. Default 256 MiB, or half of node.memory_budget if less.
# memory_bytes = 268435456
# A directory on local disk (NVMe) for a second tier that survives restarts; "" for none.
# Safe to delete or lose: entries are checked, and a bad one is read from the store again.
dir = ""
disk_bytes = 4294967296

[cluster]
# Several nodes may serve one storage root (docs/cluster.md). The address other nodes reach
# this node's HTTP API at, written into the writer leases it takes. Default: server.bind;
# required with secret_file when server.bind is 0.0.0.0.
# advertise = "10.0.0.5:8080"
# A file holding the secret the nodes share (at least 32 bytes, e.g. `openssl rand -hex 32`).
# With it, a write that reaches a node without the graph's writer lease is forwarded to the
# node that holds it; without it, the write is answered 421 naming the holder.
# secret_file = "cluster-secret"
# Membership by UDP gossip (chitchat); off unless gossip_bind is set. The gossip is not
# authenticated: keep this port on a private network. Seeds are host:port of other nodes; a
# DNS name may resolve to several (a Kubernetes headless service).
# gossip_bind = "10.0.0.5:7946"
# gossip_advertise = "10.0.0.5:7946"   # default gossip_bind; required when that is 0.0.0.0
# seeds = ["10.0.0.6:7946", "omnigraph-gossip.omnigraph.svc:7946"]
name = "omnigraph"
gossip_interval = "500ms"
# A gossiping node hands graphs whose placement moved (a node joined) over to their owner
# once idle: at most this share of its warm graphs per interval.
rebalance_interval = "10s"
rebalance_max_share = 0.1
# "local": every node answers reads itself. "owner": reads go to the graph's placement owner,
# whose caches are warm for it, and are answered here when the owner cannot answer.
reads = "local"

[auth]
# "static" (bearer tokens), "oidc" (JWTs verified offline against cached JWKS), "hybrid"
# (a static token first, then a JWT) or "none" (no authentication, tenant "default").
# Unset: inferred from what is configured; "none" only on a loopback bind with neither
# tokens nor issuers, and a start-up error otherwise. See docs/auth.md.
# mode = "static"
# tokens_file = "tokens.json"   # [{"token": "...", "actor": "...", "tenant": "...", "groups": []}]
# [[auth.tokens]]
# token = "change-me"           # or token_sha256 = "<64 hex digits>" (auth hash-token)
# actor = "alice"
# tenant = "acme"
# groups = ["team"]
# Tolerance on a JWT's exp and nbf.
clock_skew = "60s"
# JWKS files and URLs are refreshed in the background this often; never on a request.
jwks_cache_ttl = "5m"
# Past this since the last successful refresh, an issuer's keys are refused (fail closed).
jwks_stale_max = "24h"
# [[auth.oidc]]
# issuer = "https://idp.example.com/"
# audiences = ["omnigraph"]
# jwks_url = "https://idp.example.com/.well-known/jwks.json"
# jwks_file = "idp-jwks.json"   # air-gapped pre-seed, re-read every jwks_cache_ttl
# actor_claim = "sub"
# tenant_claim = "org_id"       # or: tenant = "acme" (a customer's own IdP)
# groups_claim = "groups"
# algorithms = ["RS256", "ES256", "EdDSA"]
# allowed_actors = ["alice"]
# Per-tenant policies: <tenant>.cedar or <tenant>.yaml, _default.* for the rest.
# Without a policy an authenticated actor may only read its own tenant's graphs.
# policy_dir = "policies"
# [auth.bundle]                 # signed {jwks, policies, actor allowlist}
# source = "https://config.example.com/omnigraph/bundle.json"   # or a local path
# public_key = "<base64 Ed25519 public key>"
# sync_interval = "1m"

[usage]
# What each tenant uses (warm seconds, requests, object-store requests and bytes) is counted
# by the second and written as records under {root}/_system/usage/ every flush_interval and
# at shutdown (docs/control-plane.md). `omnigraph-cloud usage` folds them into totals.
enabled = true
flush_interval = "60s"

[control]
# With node.roles including "control": operators' bearer tokens by SHA-256 (one a line), and
# the Ed25519 key the published bundle is signed with (docs/control-plane.md).
# operator_tokens_file = "operators.sha256"
# bundle_key_file = "bundle-key.pem"

[log]
# tracing filter directive; RUST_LOG takes precedence when set.
# Lance logs every scan at info; it is kept at warn by default.
filter = "info,lance=warn"
# "text" or "json"
format = "text"
"#;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub node: NodeSection,
    pub leases: LeasesSection,
    pub maintenance: MaintenanceSection,
    pub server: ServerSection,
    pub storage: StorageSection,
    pub actors: ActorSection,
    pub writes: WritesSection,
    pub cache: CacheSection,
    pub limits: LimitsSection,
    pub cluster: ClusterSection,
    pub auth: AuthSection,
    pub usage: UsageSection,
    pub control: ControlSection,
    pub log: LogSection,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub bind: String,
    pub metrics_bind: String,
    pub body_limit_bytes: u64,
    pub load_body_limit_bytes: u64,
    pub shutdown_grace: String,
    pub drain_delay: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            bind: "127.0.0.1:8080".into(),
            metrics_bind: "127.0.0.1:9091".into(),
            body_limit_bytes: 1024 * 1024,
            load_body_limit_bytes: 32 * 1024 * 1024,
            shutdown_grace: "30s".into(),
            drain_delay: "0s".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub root: String,
    pub skip_probe: bool,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            root: "file://./omnigraph-data".into(),
            skip_probe: false,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorSection {
    pub idle_timeout: String,
    pub call_timeout: String,
    pub max_warm_graphs: u64,
}

impl Default for ActorSection {
    fn default() -> Self {
        ActorSection {
            idle_timeout: "10m".into(),
            call_timeout: "10m".into(),
            max_warm_graphs: 1024,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WritesSection {
    pub coalesce: bool,
    pub max_batch_writes: u64,
    pub max_batch_bytes: u64,
    pub max_queue: u64,
    pub max_queue_bytes: u64,
    pub max_wait: String,
    /// Per-tenant overrides: `[writes.tenants.<tenant>]` with any of the keys above.
    pub tenants: std::collections::BTreeMap<String, WritesOverride>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WritesOverride {
    pub coalesce: Option<bool>,
    pub max_batch_writes: Option<u64>,
    pub max_batch_bytes: Option<u64>,
    pub max_queue: Option<u64>,
    pub max_queue_bytes: Option<u64>,
    pub max_wait: Option<String>,
}

impl Default for WritesSection {
    fn default() -> Self {
        WritesSection {
            coalesce: true,
            max_batch_writes: 256,
            max_batch_bytes: 4 * 1024 * 1024,
            max_queue: 4096,
            max_queue_bytes: 64 * 1024 * 1024,
            max_wait: "0s".into(),
            tenants: Default::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub filter: String,
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            filter: "info,lance=warn".into(),
            format: "text".into(),
        }
    }
}

impl FileConfig {
    /// Deserializes a (possibly env-amended) document. It goes back through text so that
    /// errors carry the line and key they refer to.
    pub(crate) fn deserialize_table(table: toml::Table) -> Result<FileConfig, ConfigError> {
        let text = toml::to_string(&table).map_err(|err| ConfigError::Parse {
            message: err.to_string(),
        })?;
        toml::from_str(&text).map_err(|err| ConfigError::Parse {
            message: err.to_string(),
        })
    }

    /// Checks every value and produces the typed configuration.
    pub fn validate(self) -> Result<NodeConfig, ConfigError> {
        let bind: SocketAddr = self.server.bind.parse().map_err(|_| {
            ConfigError::invalid(
                "server.bind",
                &self.server.bind,
                "an IP:port such as 127.0.0.1:8080",
            )
        })?;
        let metrics_bind = match self.server.metrics_bind.as_str() {
            "off" => None,
            raw => Some(raw.parse::<SocketAddr>().map_err(|_| {
                ConfigError::invalid(
                    "server.metrics_bind",
                    raw,
                    "an IP:port such as 127.0.0.1:9091, or \"off\"",
                )
            })?),
        };
        let server = ServerConfig {
            bind,
            metrics_bind,
            body_limit_bytes: positive_size(
                "server.body_limit_bytes",
                self.server.body_limit_bytes,
            )?,
            load_body_limit_bytes: positive_size(
                "server.load_body_limit_bytes",
                self.server.load_body_limit_bytes,
            )?,
            shutdown_grace: duration("server.shutdown_grace", &self.server.shutdown_grace, false)?,
            drain_delay: duration("server.drain_delay", &self.server.drain_delay, false)?,
        };
        let storage = StorageConfig {
            root: StorageRoot::parse(&self.storage.root)?,
            skip_probe: self.storage.skip_probe,
        };
        let actors = ActorConfig {
            idle_timeout: duration("actors.idle_timeout", &self.actors.idle_timeout, true)?,
            call_timeout: duration("actors.call_timeout", &self.actors.call_timeout, true)?,
            max_warm_graphs: positive_size("actors.max_warm_graphs", self.actors.max_warm_graphs)?,
        };
        let writes = validate_writes(self.writes)?;
        let node = validate_node(self.node)?;
        let leases = validate_leases(self.leases)?;
        let maintenance = validate_maintenance(self.maintenance)?;
        let cache = validate_cache(self.cache, &node.memory_budget)?;
        let limits = validate_limits(self.limits, &node.memory_budget, &server)?;
        let cluster = validate_cluster(self.cluster, bind)?;
        let auth = validate_auth(self.auth, bind)?;
        let usage = validate_usage(self.usage)?;
        let control = validate_control(self.control, node.controls())?;
        let log = LogConfig {
            filter: self.log.filter,
            format: match self.log.format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::invalid(
                        "log.format",
                        other,
                        "\"text\" or \"json\"",
                    ));
                }
            },
        };
        Ok(NodeConfig {
            node,
            leases,
            maintenance,
            server,
            storage,
            actors,
            writes,
            cache,
            limits,
            cluster,
            auth,
            usage,
            control,
            log,
        })
    }
}

fn validate_writes(section: WritesSection) -> Result<WriteConfig, ConfigError> {
    let mut tenants = std::collections::BTreeMap::new();
    for (tenant, limits) in section.tenants {
        let key = |field: &str| format!("writes.tenants.{tenant}.{field}");
        let id = TenantId::new(&tenant)
            .map_err(|err| ConfigError::invalid("writes.tenants", &tenant, &err.to_string()))?;
        let size = |field: &str, value: Option<u64>| {
            value.map(|v| positive_size(&key(field), v)).transpose()
        };
        let overrides = WriteOverrides {
            coalesce: limits.coalesce,
            max_batch_writes: size("max_batch_writes", limits.max_batch_writes)?,
            max_batch_bytes: size("max_batch_bytes", limits.max_batch_bytes)?,
            max_queue: size("max_queue", limits.max_queue)?,
            max_queue_bytes: size("max_queue_bytes", limits.max_queue_bytes)?,
            max_wait: limits
                .max_wait
                .as_deref()
                .map(|v| duration(&key("max_wait"), v, false))
                .transpose()?,
        };
        tenants.insert(id, overrides);
    }
    Ok(WriteConfig {
        coalesce: section.coalesce,
        max_batch_writes: positive_size("writes.max_batch_writes", section.max_batch_writes)?,
        max_batch_bytes: positive_size("writes.max_batch_bytes", section.max_batch_bytes)?,
        max_queue: positive_size("writes.max_queue", section.max_queue)?,
        max_queue_bytes: positive_size("writes.max_queue_bytes", section.max_queue_bytes)?,
        max_wait: duration("writes.max_wait", &section.max_wait, false)?,
        tenants,
    })
}
