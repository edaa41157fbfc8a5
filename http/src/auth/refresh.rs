//! The background side of auth: JWKS refreshers (one per issuer) and the bundle sync. They
//! are the only code that reads key files or calls out to the network, and no request ever
//! waits for them.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use omnigraph_cloud_config::{
    AuthConfig, BundleConfig, BundleSource, ConfigError, OidcIssuerConfig, ROOT_BUNDLE_PATH,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::TokenVerifier;
use super::bundle::{self, BundleError, Prepared};
use super::jwks::{KeySource, VerifyKey, parse_jwks};
use omnigraph_cloud_actors::GraphStore;

use crate::limits::LiveLimits;
use crate::policy::PolicyStore;

/// How long one fetch of a JWKS URL or bundle URL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// At start, how long the node waits for each URL's first fetch before serving anyway.
const FIRST_FETCH_WAIT: Duration = Duration::from_secs(5);
/// Nudges (an unknown `kid`) refresh early, but never more often than this.
const MIN_NUDGE_GAP: Duration = Duration::from_secs(10);

/// The running background tasks; dropping this stops them.
#[derive(Default)]
pub struct AuthTasks {
    handles: Vec<JoinHandle<()>>,
}

impl Drop for AuthTasks {
    fn drop(&mut self) {
        for handle in &self.handles {
            handle.abort();
        }
    }
}

impl AuthTasks {
    /// Loads the bundle (a local bundle that fails to verify is a start-up error; an
    /// unreachable or bad URL only a loud warning), makes a first attempt at every JWKS URL,
    /// then starts the periodic refreshers.
    pub async fn start(
        config: &AuthConfig,
        verifier: Arc<TokenVerifier>,
        policy: Arc<PolicyStore>,
        limits: Option<Arc<LiveLimits>>,
        root: Option<GraphStore>,
    ) -> Result<AuthTasks, ConfigError> {
        let client = fetch_client()
            .map_err(|err| ConfigError::invalid("auth", "<http client>", &err.to_string()))?;
        let mut tasks = AuthTasks::default();
        if let Some(bundle) = &config.bundle {
            let mut sync = BundleSync {
                config: bundle.clone(),
                client: client.clone(),
                verifier: verifier.clone(),
                policy: policy.clone(),
                limits,
                root,
                current: None,
            };
            match sync.run_once().await {
                Ok(()) => {}
                Err(err) if matches!(bundle.source, BundleSource::File(_)) => {
                    return Err(ConfigError::invalid(
                        "auth.bundle.source",
                        &source_name(&bundle.source),
                        &format!("a valid signed bundle ({err})"),
                    ));
                }
                Err(err) => {
                    error!(error = %err, source = %source_name(&bundle.source),
                        "no signed bundle in force at start; serving with configured policies and keys only");
                }
            }
            tasks.handles.push(tokio::spawn(sync.run()));
        }
        if verifier.oidc().is_some() {
            for issuer in &config.oidc {
                let mut refresher = Refresher {
                    issuer: issuer.clone(),
                    client: client.clone(),
                    verifier: verifier.clone(),
                    degraded: false,
                };
                if issuer.jwks_url.is_some()
                    && tokio::time::timeout(FIRST_FETCH_WAIT, refresher.refresh())
                        .await
                        .is_err()
                {
                    warn!(issuer = %issuer.issuer, "first JWKS fetch is slow; serving without waiting for it");
                }
                tasks
                    .handles
                    .push(tokio::spawn(refresher.run(config.jwks_cache_ttl)));
            }
        }
        Ok(tasks)
    }
}

pub(crate) fn read_jwks_file(path: &Path) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
    let bytes = std::fs::read(path).map_err(|err| err.to_string())?;
    parse_jwks(&bytes)
}

struct Refresher {
    issuer: OidcIssuerConfig,
    client: reqwest::Client,
    verifier: Arc<TokenVerifier>,
    degraded: bool,
}

impl Refresher {
    async fn run(mut self, ttl: Duration) {
        let Some(nudge) = self
            .verifier
            .oidc()
            .and_then(|oidc| oidc.nudge(&self.issuer.issuer))
        else {
            return;
        };
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ttl) => {}
                _ = nudge.notified() => {
                    let gap = MIN_NUDGE_GAP.min(ttl);
                    let since = last.elapsed();
                    if since < gap {
                        tokio::time::sleep(gap - since).await;
                    }
                }
            }
            last = Instant::now();
            self.refresh().await;
        }
    }

    /// Refreshes every source of this issuer once.
    async fn refresh(&mut self) {
        let Some(oidc) = self.verifier.oidc() else {
            return;
        };
        let issuer = self.issuer.issuer.as_str();
        let metrics = self.verifier.metrics();
        let mut failures = Vec::new();
        if let Some(path) = &self.issuer.jwks_file {
            match read_jwks_file(path) {
                Ok(keys) => {
                    oidc.keys.replace(issuer, KeySource::File, keys);
                    metrics.jwks_refreshed(issuer, "file", true);
                }
                Err(err) => {
                    metrics.jwks_refreshed(issuer, "file", false);
                    failures.push(format!("{}: {err}", path.display()));
                }
            }
        }
        if let Some(url) = &self.issuer.jwks_url {
            match fetch(&self.client, url)
                .await
                .and_then(|bytes| parse_jwks(&bytes))
            {
                Ok(keys) => {
                    oidc.keys.replace(issuer, KeySource::Url, keys);
                    metrics.jwks_refreshed(issuer, "url", true);
                }
                Err(err) => {
                    metrics.jwks_refreshed(issuer, "url", false);
                    failures.push(format!("{url}: {err}"));
                }
            }
        }
        let degraded = !failures.is_empty();
        metrics.jwks_degraded(issuer, degraded);
        if degraded {
            warn!(
                issuer,
                failures = %failures.join("; "),
                stale_max = %humantime::format_duration(oidc.keys.stale_max()),
                "JWKS refresh failed: serving on cached keys (degraded) until they pass auth.jwks_stale_max"
            );
        } else if self.degraded {
            info!(issuer, "JWKS refresh succeeded again; no longer degraded");
        }
        self.degraded = degraded;
    }
}

struct BundleSync {
    config: BundleConfig,
    client: reqwest::Client,
    verifier: Arc<TokenVerifier>,
    policy: Arc<PolicyStore>,
    /// The tenant limits a bundle may set; `None` where nothing admits requests.
    limits: Option<Arc<LiveLimits>>,
    /// The storage root, for a bundle published there (`source = "root"`), and where the
    /// bundle's tenant roots are installed.
    root: Option<GraphStore>,
    /// Serial and payload digest of the bundle in force.
    current: Option<(u64, [u8; 32])>,
}

impl BundleSync {
    async fn run(mut self) {
        loop {
            tokio::time::sleep(self.config.sync_interval).await;
            if let Err(err) = self.run_once().await {
                let in_force = self
                    .current
                    .map(|(serial, _)| format!("serial {serial}"))
                    .unwrap_or_else(|| "none".into());
                error!(error = %err, source = %source_name(&self.config.source), %in_force,
                    "signed bundle refused or unavailable; the last good bundle stays in force");
            }
        }
    }

    async fn run_once(&mut self) -> Result<(), BundleError> {
        let result = self.load().await;
        if let Err(err) = &result {
            self.verifier.metrics().bundle_rejected(err.reason());
        }
        result
    }

    async fn load(&mut self) -> Result<(), BundleError> {
        let bytes = read_bundle(&self.config.source, &self.client, self.root.as_ref()).await?;
        let (mut payload, payload_bytes) = bundle::open(&bytes, &self.config.public_key)?;
        let limits = match &self.limits {
            Some(live) => Some(
                live.prepare(&payload.limits)
                    .map_err(BundleError::Invalid)?,
            ),
            None => None,
        };
        payload.limits.clear();
        let issuers: HashSet<&str> = self
            .verifier
            .oidc()
            .map(|oidc| oidc.keys.issuers().collect())
            .unwrap_or_default();
        let prepared = bundle::prepare(payload, &payload_bytes, &issuers)?;
        match self.current {
            Some((serial, digest)) if prepared.serial == serial && prepared.digest == digest => {
                // Unchanged: its keys are as fresh as this successful sync.
                self.install_keys(&prepared);
                return Ok(());
            }
            Some((serial, _)) if prepared.serial <= serial => {
                return Err(BundleError::Rollback {
                    offered: prepared.serial,
                    current: serial,
                });
            }
            _ => {}
        }
        // Tenants' own roots first: a root that cannot be opened refuses the bundle whole.
        if let Some(root) = &self.root {
            root.set_tenant_roots(&prepared.tenants.roots)
                .map_err(|err| BundleError::Invalid(format!("tenant storage roots: {err}")))?;
        }
        self.install_keys(&prepared);
        if let Some(oidc) = self.verifier.oidc() {
            oidc.bundle_allowlist
                .store(prepared.allowlist.clone().map(Arc::new));
        }
        let tenants = prepared.policies.len();
        self.policy.apply_bundle(prepared.policies);
        self.verifier.install_tenants(prepared.tenants);
        if let (Some(live), Some(limits)) = (&self.limits, limits) {
            live.install(limits);
        }
        self.verifier.metrics().bundle_applied(prepared.serial);
        self.current = Some((prepared.serial, prepared.digest));
        info!(serial = prepared.serial, tenants, source = %source_name(&self.config.source), "signed bundle in force");
        Ok(())
    }

    fn install_keys(&self, prepared: &Prepared) {
        let Some(oidc) = self.verifier.oidc() else {
            return;
        };
        let issuers: Vec<String> = oidc.keys.issuers().map(str::to_string).collect();
        for issuer in issuers {
            match prepared.jwks.get(&issuer) {
                Some(keys) => oidc.keys.replace(&issuer, KeySource::Bundle, keys.clone()),
                None => oidc.keys.remove(&issuer, KeySource::Bundle),
            }
        }
    }
}

/// The signed bundle's bytes, from where `source` says, not verified yet.
pub async fn read_bundle(
    source: &BundleSource,
    client: &reqwest::Client,
    root: Option<&GraphStore>,
) -> Result<Vec<u8>, BundleError> {
    match source {
        BundleSource::Url(url) => fetch(client, url).await.map_err(BundleError::Unavailable),
        BundleSource::File(path) => std::fs::read(path)
            .map_err(|err| BundleError::Unavailable(format!("{}: {err}", path.display()))),
        BundleSource::Root => {
            let root = root.ok_or_else(|| {
                BundleError::Unavailable("this process has no storage root".into())
            })?;
            Ok(root
                .get_system_object(ROOT_BUNDLE_PATH, None)
                .await
                .map_err(|err| BundleError::Unavailable(err.to_string()))?
                .ok_or_else(|| {
                    BundleError::Unavailable(format!(
                        "no bundle published at {{root}}/{ROOT_BUNDLE_PATH} yet"
                    ))
                })?
                .to_vec())
        }
    }
}

/// An HTTP client for JWKS and bundle URLs, with the fetch timeouts.
pub fn fetch_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .build()
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| err.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    response
        .bytes()
        .await
        .map(|bytes| bytes.to_vec())
        .map_err(|err| err.to_string())
}

fn source_name(source: &BundleSource) -> String {
    match source {
        BundleSource::Url(url) => url.clone(),
        BundleSource::File(path) => path.display().to_string(),
        BundleSource::Root => format!("{{root}}/{ROOT_BUNDLE_PATH}"),
    }
}
