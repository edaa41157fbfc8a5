//! The control-plane role (`node.roles = ["control"]`): the tenant directory, provisioning,
//! the bundle published to the root, and usage queries (docs/control-plane.md).
//!
//! It holds only soft state. Its state is the tenant records under the root, and every change
//! ends by publishing the bundle they make to `{root}/_system/auth/bundle.json`, where data
//! nodes read it on their own schedule. No data request reaches it: with the control plane
//! down, nodes serve with the last bundle they verified, and only provisioning fails.
//!
//! Files: this one publishes; [`directory`] holds the records; [`api`] is the HTTP API, and
//! [`usage`] its usage query; [`offline`] serves commands run outside a node.

mod api;
pub(crate) mod directory;
pub(crate) mod offline;
mod usage;

use std::collections::HashSet;
use std::sync::Arc;

use omnigraph_cloud_actors::{GraphStore, RepoError};
use omnigraph_cloud_config::{ControlConfig, ROOT_BUNDLE_PATH};
use omnigraph_cloud_http::bundle;
use omnigraph_cloud_http::signing::SigningKey;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::info;

pub(crate) use api::router;

/// A storage error of the control plane: 503, the store could not be read or written.
fn internal(err: RepoError) -> omnigraph_cloud_http::ApiError {
    tracing::error!(error = %err, "control plane storage error");
    omnigraph_cloud_http::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("the storage root could not be read or written: {err}"),
    )
}

/// What the control plane needs: the root, its operators and its signing key.
pub(crate) struct Control {
    store: GraphStore,
    operators: Operators,
    key: SigningKey,
    /// This node's limits, which quotas are checked against.
    limits: omnigraph_cloud_config::LimitsConfig,
    clock: omnigraph_cloud_actors::Clock,
    /// One change at a time in this process (a change reads, writes and publishes).
    changes: Mutex<()>,
}

/// The operators' tokens, by SHA-256 (`control.operator_tokens_file`).
#[derive(Debug, Clone)]
pub(crate) struct Operators(HashSet<[u8; 32]>);

impl Operators {
    pub(crate) fn load(config: &ControlConfig) -> Result<Operators, String> {
        let tokens = config
            .operator_tokens_file
            .as_ref()
            .ok_or("control.operator_tokens_file is not set")?;
        let text = std::fs::read_to_string(tokens)
            .map_err(|err| format!("control.operator_tokens_file {}: {err}", tokens.display()))?;
        let mut operators = HashSet::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut digest = [0u8; 32];
            hex::decode_to_slice(line, &mut digest).map_err(|_| {
                format!(
                    "control.operator_tokens_file {}: '{line}' is not 64 hex digits (the \
                     SHA-256 of a token: omnigraph-cloud auth hash-token)",
                    tokens.display()
                )
            })?;
            operators.insert(digest);
        }
        if operators.is_empty() {
            return Err(format!(
                "control.operator_tokens_file {}: no operator token",
                tokens.display()
            ));
        }
        Ok(Operators(operators))
    }

    /// Whether `token` is an operator's. Looked up by digest, which a caller cannot steer
    /// toward a stored one without a SHA-256 preimage.
    pub(crate) fn contains(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.0.contains(&digest)
    }
}

/// Middleware: only a request with an operator's bearer token passes.
pub(crate) async fn operator_only(
    axum::extract::State(operators): axum::extract::State<Operators>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(token) if operators.contains(token) => next.run(request).await,
        Some(_) => {
            omnigraph_cloud_http::ApiError::unauthorized("not an operator token").into_response()
        }
        None => {
            omnigraph_cloud_http::ApiError::unauthorized("missing bearer token").into_response()
        }
    }
}

impl Control {
    /// The control plane of `operators`, signing with the bundle key `config` names.
    pub(crate) fn load(
        config: &ControlConfig,
        operators: Operators,
        limits: &omnigraph_cloud_config::LimitsConfig,
        store: GraphStore,
    ) -> Result<Arc<Control>, String> {
        let key_path = config
            .bundle_key_file
            .as_ref()
            .ok_or("control.bundle_key_file is not set")?;
        let pem = std::fs::read_to_string(key_path)
            .map_err(|err| format!("control.bundle_key_file {}: {err}", key_path.display()))?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|err| format!("control.bundle_key_file {}: {err}", key_path.display()))?;
        Ok(Arc::new(Control {
            store,
            operators,
            key,
            limits: limits.clone(),
            clock: omnigraph_cloud_actors::Clock::system(),
            changes: Mutex::new(()),
        }))
    }

    /// Routes this process's reads of a tenant's graphs and usage to its own root, as the
    /// records say: at start, before the first change does it.
    pub(crate) async fn load_tenant_roots(&self) -> Result<(), RepoError> {
        let records = directory::load_all(&self.store).await?;
        self.store
            .set_tenant_roots(&directory::tenant_roots(&records))
    }

    fn now_ms(&self) -> u64 {
        self.clock.wall_ms()
    }

    /// The tenants as the records under the root say, and the bundle they make published
    /// again: what `omnigraph-cloud control rebuild` prints.
    pub(crate) async fn rebuild(&self) -> Result<serde_json::Value, RepoError> {
        let _one = self.changes.lock().await;
        let serial = self.publish().await?;
        let records = directory::load_all(&self.store).await?;
        let tenants: Vec<serde_json::Value> = records
            .iter()
            .map(|record| {
                serde_json::json!({"tenant": record.tenant, "state": record.state,
                                   "tokens": record.tokens.len()})
            })
            .collect();
        Ok(serde_json::json!({"bundle_serial": serial, "tenants": tenants}))
    }

    /// Publishes the bundle every tenant record makes, with the next serial; which serial.
    ///
    /// Safe beside other control-plane processes: the bundle is replaced only if it is still
    /// the one read before the records were listed, and otherwise made again from a new
    /// listing. So the last bundle written was made from a listing taken after every record
    /// change that had finished before it, and no publish replaces a newer bundle.
    pub(crate) async fn publish(&self) -> Result<u64, RepoError> {
        for _ in 0..PUBLISH_ATTEMPTS {
            let current = self
                .store
                .get_system_object_versioned(ROOT_BUNDLE_PATH)
                .await?;
            let published = current
                .as_ref()
                .and_then(|(envelope, _)| bundle::published_serial(envelope))
                .unwrap_or(0);
            let records = directory::load_all(&self.store).await?;
            // This process reads tenants' graphs and usage too (deletion, usage queries).
            self.store
                .set_tenant_roots(&directory::tenant_roots(&records))?;
            // Never behind the clock either, so that a root whose bundle was removed does not
            // restart at a serial nodes refuse.
            let serial = published.saturating_add(1).max(self.now_ms());
            let payload = directory::bundle_payload(&records, serial);
            let bytes = serde_json::to_vec(&payload).expect("a bundle payload serializes");
            let signed = bundle::sign(&bytes, &self.key).map_err(|err| RepoError::Internal {
                message: err.to_string(),
            })?;
            let expected = current.map(|(_, version)| version);
            if self
                .store
                .put_system_object_if(ROOT_BUNDLE_PATH, signed.into_bytes(), expected)
                .await?
            {
                info!(serial, tenants = records.len(), "bundle published");
                return Ok(serial);
            }
        }
        Err(RepoError::Unavailable {
            message: format!(
                "the bundle was replaced by other control-plane processes {PUBLISH_ATTEMPTS} \
                 times while this one was publishing"
            ),
        })
    }
}

/// How often a publish is made again when another process published first.
const PUBLISH_ATTEMPTS: usize = 16;
