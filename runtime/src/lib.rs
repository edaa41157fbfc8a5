//! The composition root of an omnigraph-cloud node: builds the components (storage, actor
//! registry, token verifier, metrics) from a validated configuration, serves the HTTP API and
//! shuts everything down in order. Embeddable, so that tests and users can run nodes in one
//! process; the `omnigraph-cloud` binary is a thin command line over it.
//!
//! Depends on: config, cluster, actors, http.

#![recursion_limit = "256"]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use omnigraph_cloud_actors::usage::{UsageFlush, UsageMeter, UsageTask};
use omnigraph_cloud_actors::{
    ActorMetrics, CacheError, CacheMetrics, GraphStore, MaintenanceSettings, NodeCache,
    NodeMaintenance, ProbeError, Registry, RepoError, StoreMetrics,
};
use omnigraph_cloud_cluster::lease::LeaseTiming;
use omnigraph_cloud_cluster::membership::{MemberState, MembershipError};
use omnigraph_cloud_config::{AuthMode, ConfigError, NodeConfig};
use omnigraph_cloud_http::{
    AppState, Auth, AuthTasks, BodyLimits, ForwardSetup, LiveLimits, MIN_SECRET_BYTES, Readiness,
    metrics_router, router,
};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

mod cluster;
mod console;
mod control;
mod memory;

pub use control::offline::{open_root_for_command, rebuild_control};
pub use memory::resident_bytes;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("storage root {root} cannot be used: {source}")]
    Storage {
        root: String,
        #[source]
        source: RepoError,
    },
    #[error("storage root {root} failed the conditional-write probe: {source}")]
    Probe {
        root: String,
        #[source]
        source: ProbeError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("http server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error("cluster.secret_file {path}: {message}")]
    ClusterSecret { path: String, message: String },
    #[error("control plane: {0}")]
    Control(String),
}

/// A running node.
pub struct Node {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    /// The operator listener; aborted at shutdown (it holds no request worth draining).
    metrics_server: Option<JoinHandle<Result<(), std::io::Error>>>,
    registry: Registry,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), std::io::Error>>,
    config: NodeConfig,
    /// JWKS refreshers and bundle sync; stopped when the node is dropped.
    _auth_tasks: AuthTasks,
    /// Samples the resident memory against the budget; stopped when the node is dropped.
    _memory: memory::MemoryWatch,
    /// What `/readyz` answers; turned to draining first at shutdown.
    readiness: Arc<Readiness>,
    /// Usage records: the metering task, and the last flush at shutdown.
    usage: Option<(Arc<UsageFlush>, UsageTask)>,
    /// The cluster layer: gossip (marked draining first at shutdown), node record, placement.
    cluster: cluster::ClusterPart,
}

impl Node {
    /// Builds the node's components, binds the listener and starts serving.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let mut metrics = prometheus_client::registry::Registry::default();
        let root = config.storage.root.display_uri();
        // Bound first: the address the node advertises in its leases may be the port the
        // system picked.
        let listener = TcpListener::bind(config.server.bind)
            .await
            .map_err(|source| NodeError::Bind {
                addr: config.server.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(NodeError::Serve)?;
        let advertise = advertised_address(&config, addr);
        let meter = config
            .usage
            .enabled
            .then(|| Arc::new(UsageMeter::new(omnigraph_cloud_actors::Clock::system())));
        let mut cache_metrics = CacheMetrics::register(&mut metrics);
        let mut store_metrics = StoreMetrics::register(&mut metrics);
        if let Some(meter) = &meter {
            cache_metrics = cache_metrics.with_usage(Arc::clone(meter));
            store_metrics = store_metrics.with_usage(Arc::clone(meter));
        }
        let cache = NodeCache::build(&config.cache, cache_metrics).await?;
        let store = GraphStore::open(&config.storage.root, store_metrics)
            .map_err(|source| NodeError::Storage {
                root: root.clone(),
                source,
            })?
            .with_cache(cache);
        if config.storage.skip_probe {
            warn!(%root, "storage probe skipped (storage.skip_probe = true): conditional writes are assumed to work");
        } else {
            let report =
                store
                    .probe_conditional_writes()
                    .await
                    .map_err(|source| NodeError::Probe {
                        root: root.clone(),
                        source,
                    })?;
            info!(%root, update_if_match = report.update_if_match, "storage enforces conditional writes");
        }
        let mut leases = store.leases(LeaseTiming {
            ttl: config.leases.ttl,
            safety_margin: config.leases.safety_margin,
        });
        if let Some(address) = &advertise {
            leases = leases.with_address(address.as_str());
        }
        let holder = holder_id(config.node.id.as_deref());
        let mut cluster = cluster::join(&config, advertise.clone(), &leases, &mut metrics).await?;
        if let Some(directory) = &cluster.directory {
            // Repo leases hang off this node's lease: one write renews them all.
            leases = leases.with_node_leases(Arc::clone(directory) as _);
        }
        let mut maintenance = NodeMaintenance::new(
            leases,
            Arc::clone(&holder),
            MaintenanceSettings {
                enabled: config.node.works() && config.maintenance.enabled,
                config: config.maintenance.clone(),
            },
            &mut metrics,
        );
        if let Some(placement) = &cluster.placement {
            maintenance = maintenance.with_placement(Arc::clone(placement));
        }
        let registry = Registry::new(
            store,
            config.actors.clone(),
            config.writes.clone(),
            ActorMetrics::register(&mut metrics),
            maintenance,
        );
        let memory = memory::watch(
            config.node.memory_budget,
            config.cache.memory_bytes,
            &mut metrics,
            registry.clone(),
        );
        omnigraph_cloud_actors::start_maintenance(&registry);
        let usage = meter.as_ref().map(|meter| {
            registry.meter_usage(Arc::clone(meter));
            let flush = UsageFlush::new(
                Arc::clone(meter),
                registry.store().clone(),
                registry.holder_id().to_string(),
                omnigraph_cloud_actors::Clock::system(),
            );
            let task = flush.start(registry.clone(), config.usage.flush_interval);
            (flush, task)
        });
        cluster.start_rebalancing(
            &registry,
            config.cluster.rebalance_interval,
            config.cluster.rebalance_max_share,
        );
        info!(
            holder = registry.holder_id(),
            serve = config.node.serves(),
            worker = registry.maintenance_settings().enabled,
            "node roles"
        );
        let tenant_limits = LiveLimits::new(config.limits.clone());
        let auth = Auth::start(
            &config.auth,
            &mut metrics,
            Some(Arc::clone(&tenant_limits)),
            Some(registry.store().clone()),
        )
        .await?;
        if let (Some(node), true) = (config.node.id.clone(), config.node.serves()) {
            // The graphs warm at this node's last eviction or shutdown, opened again before
            // they are asked for (docs/cache.md); after the bundle, which says which tenants
            // have a root of their own.
            registry.restore_warm_set_in_background(node);
        }
        if auth.verifier.mode() == AuthMode::None {
            warn!(bind = %config.server.bind, "authentication is off: every request acts in tenant 'default' with every permission");
        } else {
            info!(
                mode = config.auth.mode.as_str(),
                issuers = config.auth.oidc.len(),
                "authentication on"
            );
        }
        let limits = BodyLimits {
            default: config.server.body_limit_bytes,
            load: config.server.load_body_limit_bytes,
        };
        let mut state = AppState::new(
            registry.clone(),
            auth.verifier.clone(),
            auth.policy.clone(),
            metrics,
            limits,
        );
        state.serves_data = config.node.serves();
        state.set_limits(tenant_limits);
        state.membership = cluster.membership.clone();
        state.usage = meter.clone();
        if let Some(path) = &config.cluster.secret_file {
            let setup = ForwardSetup {
                secret: read_secret(path)?,
                node: holder.to_string(),
                // Validation guarantees an address whenever a secret is set.
                address: advertise.clone().unwrap_or_default(),
                // The holder bounds a write by actors.call_timeout; the hop gets a little more.
                timeout: config.actors.call_timeout + Duration::from_secs(30),
                reads_to_owner: config.cluster.reads_to_owner,
            };
            state
                .enable_forwarding(setup)
                .map_err(|message| NodeError::ClusterSecret {
                    path: path.display().to_string(),
                    message,
                })?;
            info!(
                address = advertise.as_deref().unwrap_or(""),
                "writes this node may not make are forwarded to the writer-lease holder"
            );
        }
        let readiness = Arc::clone(&state.readiness);
        let (metrics_addr, metrics_server) = match config.server.metrics_bind {
            Some(bind) => {
                let listener = TcpListener::bind(bind)
                    .await
                    .map_err(|source| NodeError::Bind { addr: bind, source })?;
                let addr = listener.local_addr().map_err(NodeError::Serve)?;
                let app = metrics_router(state.clone());
                info!(%addr, "operator listener serving /metrics");
                let server = tokio::spawn(async move { axum::serve(listener, app).await });
                (Some(addr), Some(server))
            }
            None => (None, None),
        };
        let members = state.membership.clone();
        let mut app = router(state);
        // The operators' tokens, read once for the console and the control plane.
        let operators = match &config.control.operator_tokens_file {
            Some(_) => Some(control::Operators::load(&config.control).map_err(NodeError::Control)?),
            None => None,
        };
        if let Some(operators) = &operators {
            let roles = config.node.roles.iter().map(|role| role.as_str()).collect();
            app = app.merge(console::router(Arc::new(console::Console {
                registry: registry.clone(),
                operators: operators.clone(),
                roles,
                members,
            })));
            info!("operator console at /console");
        }
        if let (true, Some(operators)) = (config.node.controls(), operators) {
            let control = control::Control::load(
                &config.control,
                operators,
                &config.limits,
                registry.store().clone(),
            )
            .map_err(NodeError::Control)?;
            if let Err(err) = control.load_tenant_roots().await {
                warn!(error = %err, "tenant directory unreadable at start; tenants' own roots are routed after the next change");
            }
            app = app.merge(control::router(control));
            info!("control plane role: /control/v1 for operators");
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        info!(%addr, root = %config.storage.root.display_uri(), "omnigraph-cloud node serving");
        Ok(Node {
            addr,
            metrics_addr,
            metrics_server,
            registry,
            stop: Some(stop),
            server,
            config,
            _auth_tasks: auth.tasks,
            _memory: memory,
            readiness,
            usage,
            cluster,
        })
    }

    /// The address the API listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the operator listener (`/metrics`), when one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Graceful shutdown: `/readyz` answers 503 at once, the node keeps serving for
    /// `server.drain_delay` (so that load balancers stop sending), records its warm set, stops
    /// every repo actor (waiting for the requests and writes in flight, up to
    /// `server.shutdown_grace`; their leases are released), then stops accepting connections
    /// and lets what is left finish.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.readiness.drain();
        if let Some(membership) = &self.cluster.membership {
            membership.set_state(MemberState::Draining).await;
        }
        let delay = self.config.server.drain_delay;
        if !delay.is_zero() {
            info!(
                ?delay,
                "draining: /readyz answers 503; still serving until the delay ends"
            );
            tokio::time::sleep(delay).await;
        }
        // The graphs are handed over while the listener still accepts: a request that
        // arrives meanwhile gets a real answer (a write this node no longer makes is 503 with
        // Retry-After, nothing written, and a node that forwarded it runs it again, taking the
        // released lease), never a connection reset after it was sent.
        let grace = self.config.server.shutdown_grace;
        if let Some(node) = &self.config.node.id {
            match self.registry.save_warm_set(node).await {
                Ok(graphs) => info!(graphs, "warm set recorded"),
                Err(err) => warn!(error = %err, "the warm set could not be recorded"),
            }
        }
        self.registry.shutdown(grace).await;
        if let Some((flush, task)) = self.usage.take() {
            drop(task);
            match flush.flush().await {
                Ok(records) => info!(records, "usage recorded"),
                Err(err) => warn!(error = %err, "the last usage record could not be written"),
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = match tokio::time::timeout(grace, &mut self.server).await {
            Ok(Ok(result)) => result.map_err(NodeError::Serve),
            Ok(Err(join)) => Err(NodeError::Serve(std::io::Error::other(join))),
            Err(_) => {
                warn!(
                    ?grace,
                    "in-flight requests did not finish within the shutdown grace; closing them"
                );
                self.server.abort();
                Ok(())
            }
        };
        self.registry.store().cache().close().await;
        if let Some(metrics) = self.metrics_server.take() {
            metrics.abort();
        }
        self.cluster.leave().await;
        info!("omnigraph-cloud node stopped");
        served
    }
}

/// The `host:port` other nodes reach this node at: `cluster.advertise`, else the address
/// the API listens on, unless that is every address (0.0.0.0 or ::).
fn advertised_address(config: &NodeConfig, bound: SocketAddr) -> Option<String> {
    match &config.cluster.advertise {
        Some(address) => Some(address.clone()),
        None if bound.ip().is_unspecified() => None,
        None => Some(bound.to_string()),
    }
}

/// The cluster secret: the file's bytes without surrounding whitespace.
fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, NodeError> {
    let fail = |message: String| NodeError::ClusterSecret {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|err| fail(format!("cannot be read: {err}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("is not text".into()))?;
    let secret = text.trim();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(fail(format!(
            "holds {} bytes; at least {MIN_SECRET_BYTES} are needed (e.g. `openssl rand -hex 32`)",
            secret.len()
        )));
    }
    Ok(secret.as_bytes().to_vec())
}

/// A lease holder id unique to this process: `<node>-<pid>-<random>` (see [`node_name`]).
pub fn holder_id(base: Option<&str>) -> Arc<str> {
    Arc::from(format!(
        "{}-{}-{:06x}",
        node_name(base),
        std::process::id(),
        fastrand::u32(..0x100_0000)
    ))
}

/// The node's name: the configured node id, else the host name (`HOSTNAME`,
/// `/etc/hostname`), else `node`.
pub fn node_name(configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "node".to_string())
}
