//! The control plane's HTTP API, under `/control/v1`, for operators only (a bearer token whose
//! SHA-256 is in `control.operator_tokens_file`; tenant tokens are never accepted here).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use omnigraph_cloud_actors::{GraphStore, StoreMetrics};
use omnigraph_cloud_config::{ActorId, TenantId, TenantLimitsOverride};
use omnigraph_cloud_http::bundle_tenants::{BundleIssuer, parse_tenant_root};
use omnigraph_cloud_http::{ApiError, sha256_hex};
use serde::Deserialize;
use serde_json::{Value, json};

use super::directory::{self, RecordState, TenantRecord, TokenRecord};
use super::{Control, internal};

pub(crate) fn router(control: Arc<Control>) -> Router {
    Router::new()
        .route("/control/v1/tenants", get(list).post(create))
        .route("/control/v1/tenants/{tenant}", get(show).delete(remove))
        .route("/control/v1/tenants/{tenant}/tokens", post(issue_token))
        .route(
            "/control/v1/tenants/{tenant}/tokens/{id}",
            delete(revoke_token),
        )
        .route("/control/v1/tenants/{tenant}/suspend", post(suspend))
        .route("/control/v1/tenants/{tenant}/resume", post(resume))
        .route("/control/v1/tenants/{tenant}/quotas", put(set_quotas))
        .route(
            "/control/v1/tenants/{tenant}/oidc",
            put(bind_issuer).delete(unbind_issuer),
        )
        .route("/control/v1/usage", get(super::usage::usage))
        .route("/control/v1/publish", post(republish))
        .layer(axum::middleware::from_fn_with_state(
            control.operators.clone(),
            super::operator_only,
        ))
        .with_state(control)
}

fn tenant_id(name: &str) -> Result<TenantId, ApiError> {
    TenantId::new(name).map_err(|err| ApiError::bad_request(format!("tenant: {err}")))
}

/// A record as operators see it: tokens by id and actor, never their hashes.
fn view(record: &TenantRecord) -> Value {
    json!({
        "tenant": record.tenant,
        "state": record.state,
        "created_ms": record.created_ms,
        "updated_ms": record.updated_ms,
        "tokens": record.tokens.iter().map(|t| json!({"id": t.id, "actor": t.actor, "created_ms": t.created_ms})).collect::<Vec<_>>(),
        "quotas": record.quotas,
        "storage_root": record.storage_root,
        "oidc": record.oidc.as_ref().map(|bound| json!({
            "issuer": bound.issuer,
            "audiences": bound.audiences,
            "keys": bound.jwks.keys.len(),
            "groups_claim": bound.groups_claim,
        })),
    })
}

async fn list(State(control): State<Arc<Control>>) -> Result<Json<Value>, ApiError> {
    let records = directory::load_all(&control.store)
        .await
        .map_err(internal)?;
    let tenants: Vec<Value> = records
        .iter()
        .filter(|record| record.state != RecordState::Deleted)
        .map(view)
        .collect();
    Ok(Json(json!({ "tenants": tenants })))
}

async fn show(
    State(control): State<Arc<Control>>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = existing(&control, &tenant).await?;
    Ok(Json(view(&record)))
}

async fn existing(control: &Control, tenant: &str) -> Result<TenantRecord, ApiError> {
    let id = tenant_id(tenant)?;
    match directory::load(&control.store, id.as_str())
        .await
        .map_err(internal)?
    {
        Some(record) if record.state != RecordState::Deleted => Ok(record),
        _ => Err(ApiError::not_found(format!("tenant '{tenant}' not found"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    tenant: String,
    #[serde(default)]
    quotas: Option<TenantLimitsOverride>,
    /// A root of the tenant's own (`s3://bucket[/prefix]`), fixed from now on.
    #[serde(default)]
    storage_root: Option<String>,
}

async fn create(
    State(control): State<Arc<Control>>,
    Json(body): Json<CreateTenant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = tenant_id(&body.tenant)?;
    if let Some(root) = &body.storage_root {
        check_root(root).await?;
    }
    let _one = control.changes.lock().await;
    let quotas = body.quotas.unwrap_or_default();
    check_quotas(&control, id.as_str(), &quotas)?;
    // Created once, whichever control-plane process gets there first: a record is written
    // only if it is still absent (or still the tombstone read here).
    let record = loop {
        let tombstone = match directory::load_versioned(&control.store, id.as_str())
            .await
            .map_err(internal)?
        {
            Some((record, _)) if record.state != RecordState::Deleted => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("tenant '{id}' already exists"),
                ));
            }
            Some((_, version)) => Some(version),
            None => None,
        };
        let now = control.now_ms();
        let record = TenantRecord {
            tenant: id.to_string(),
            state: RecordState::Active,
            created_ms: now,
            updated_ms: now,
            tokens: Vec::new(),
            quotas: quotas.clone(),
            storage_root: body.storage_root.clone(),
            oidc: None,
        };
        if directory::save_if(&control.store, &record, tombstone)
            .await
            .map_err(internal)?
        {
            break record;
        }
    };
    let serial = control.publish().await.map_err(internal)?;
    let mut answer = view(&record);
    answer["bundle_serial"] = json!(serial);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// A tenant's own root must parse as the nodes parse it, and pass the probe every node runs
/// on its own root at start (it enforces conditional writes), so that a bucket that does not
/// exist, or that the nodes' credentials cannot write, is refused here and not at the
/// tenant's first request.
async fn check_root(root: &str) -> Result<(), ApiError> {
    let bad = |message: String| ApiError::bad_request(format!("storage_root: {message}"));
    let spec = parse_tenant_root(root).map_err(bad)?;
    let store = GraphStore::open(&spec, StoreMetrics::unregistered())
        .map_err(|err| bad(format!("'{root}' cannot be opened: {err}")))?;
    store.probe_conditional_writes().await.map_err(|err| {
        bad(format!(
            "'{root}' failed the conditional-write probe: {err}"
        ))
    })?;
    Ok(())
}

/// Quotas are checked as the nodes check a bundle's limits, against this node's limits (its
/// body limits among them): configure the control plane's `[server]` body limits as the data
/// nodes' largest, or a quota could pass here and make a node refuse the bundle.
fn check_quotas(
    control: &Control,
    tenant: &str,
    quotas: &TenantLimitsOverride,
) -> Result<(), ApiError> {
    let overrides = [(tenant.to_string(), quotas.clone())].into();
    control
        .limits
        .with_overrides(&overrides)
        .map(|_| ())
        .map_err(|err| ApiError::bad_request(format!("quotas: {err}")))
}

/// How often a change is tried again when another control-plane process changed the same
/// record between its read and its write.
const CHANGE_ATTEMPTS: usize = 8;

/// Applies `change` to the tenant's record, saves it and publishes the bundle. The record is
/// replaced only if it is still the one read; if another process changed it meanwhile,
/// `change` is applied again to the newer record.
async fn change(
    control: &Control,
    tenant: &str,
    mut change: impl FnMut(&mut TenantRecord) -> Result<(), ApiError>,
) -> Result<(TenantRecord, u64), ApiError> {
    let _one = control.changes.lock().await;
    let id = tenant_id(tenant)?;
    for _ in 0..CHANGE_ATTEMPTS {
        let (mut record, version) = match directory::load_versioned(&control.store, id.as_str())
            .await
            .map_err(internal)?
        {
            Some((record, version)) if record.state != RecordState::Deleted => (record, version),
            _ => return Err(ApiError::not_found(format!("tenant '{tenant}' not found"))),
        };
        change(&mut record)?;
        record.updated_ms = control.now_ms();
        if directory::save_if(&control.store, &record, Some(version))
            .await
            .map_err(internal)?
        {
            let serial = control.publish().await.map_err(internal)?;
            return Ok((record, serial));
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!(
            "tenant '{tenant}' was changed by another control-plane process {CHANGE_ATTEMPTS} \
             times while this change was made; try again"
        ),
    ))
}

fn answer((record, serial): (TenantRecord, u64)) -> Json<Value> {
    let mut answer = view(&record);
    answer["bundle_serial"] = json!(serial);
    Json(answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueToken {
    actor: String,
}

async fn issue_token(
    State(control): State<Arc<Control>>,
    Path(tenant): Path<String>,
    Json(body): Json<IssueToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ActorId::new(&body.actor).map_err(|err| ApiError::bad_request(format!("actor: {err}")))?;
    let secret = format!("og_{}", random_hex(24)?);
    let id = format!("tok_{}", random_hex(6)?);
    let now = control.now_ms();
    let token = TokenRecord {
        id: id.clone(),
        sha256: sha256_hex(&secret),
        actor: body.actor.clone(),
        created_ms: now,
    };
    let (record, serial) = change(&control, &tenant, |record| {
        record.tokens.push(token.clone());
        Ok(())
    })
    .await?;
    let answer = json!({
        "tenant": record.tenant, "id": id, "actor": body.actor, "token": secret,
        "bundle_serial": serial,
        "note": "the token is shown once; nodes accept it from their next bundle sync",
    });
    Ok((StatusCode::CREATED, Json(answer)))
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buffer).map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no randomness available",
        )
    })?;
    Ok(hex::encode(buffer))
}

async fn revoke_token(
    State(control): State<Arc<Control>>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    change(&control, &tenant, |record| {
        let before = record.tokens.len();
        record.tokens.retain(|token| token.id != id);
        if record.tokens.len() == before {
            return Err(ApiError::not_found(format!("token '{id}' not found")));
        }
        Ok(())
    })
    .await
    .map(answer)
}

async fn suspend(
    State(control): State<Arc<Control>>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(&control, &tenant, |record| {
        record.state = RecordState::Suspended;
        Ok(())
    })
    .await
    .map(answer)
}

async fn resume(
    State(control): State<Arc<Control>>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(&control, &tenant, |record| {
        record.state = RecordState::Active;
        Ok(())
    })
    .await
    .map(answer)
}

async fn set_quotas(
    State(control): State<Arc<Control>>,
    Path(tenant): Path<String>,
    Json(quotas): Json<TenantLimitsOverride>,
) -> Result<Json<Value>, ApiError> {
    check_quotas(&control, &tenant, &quotas)?;
    change(&control, &tenant, |record| {
        record.quotas = quotas.clone();
        Ok(())
    })
    .await
    .map(answer)
}

/// Binds the tenant's own identity provider: its tokens (`iss` = `issuer`, `aud` naming one
/// of `audiences`, the actor in `sub`) act in this tenant, verified by every node against
/// `jwks` as given here. Binding again replaces the issuer or rotates its keys.
async fn bind_issuer(
    State(control): State<Arc<Control>>,
    Path(tenant): Path<String>,
    Json(bound): Json<BundleIssuer>,
) -> Result<Json<Value>, ApiError> {
    bound
        .check()
        .map_err(|err| ApiError::bad_request(format!("oidc: {err}")))?;
    let id = tenant_id(&tenant)?;
    // One tenant per issuer: a token names its issuer, and the issuer fixes the tenant.
    let records = directory::load_all(&control.store)
        .await
        .map_err(internal)?;
    if let Some(other) = records.iter().find(|record| {
        record.tenant != id.as_str()
            && record.state != RecordState::Deleted
            && record
                .oidc
                .as_ref()
                .is_some_and(|other| other.issuer == bound.issuer)
    }) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "issuer '{}' is bound to tenant '{}' already",
                bound.issuer, other.tenant
            ),
        ));
    }
    change(&control, &tenant, |record| {
        record.oidc = Some(bound.clone());
        Ok(())
    })
    .await
    .map(answer)
}

async fn unbind_issuer(
    State(control): State<Arc<Control>>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(&control, &tenant, |record| {
        if record.oidc.take().is_none() {
            return Err(ApiError::not_found(format!(
                "tenant '{tenant}' has no identity provider bound"
            )));
        }
        Ok(())
    })
    .await
    .map(answer)
}

/// Deletes a suspended tenant that has no graph left: it stays suspended on every node, with
/// no token. Suspended first, so that no graph can be created while its graphs are counted.
async fn remove(
    State(control): State<Arc<Control>>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = tenant_id(&tenant)?;
    if existing(&control, &tenant).await?.state != RecordState::Suspended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "tenant '{tenant}' is active; suspend it first (and let the nodes sync), so that \
                 no graph is created while it is deleted"
            ),
        ));
    }
    // Another control-plane process may have made the tenant, with a root of its own.
    control.load_tenant_roots().await.map_err(internal)?;
    let graphs = control.store.list_graphs(&id).await.map_err(internal)?;
    if !graphs.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "tenant '{tenant}' still has {} graphs; resume it, delete them, suspend it, \
                 then delete it",
                graphs.len()
            ),
        ));
    }
    change(&control, &tenant, |record| {
        // Resumed meanwhile (by another process): graphs may be made again; not deleted.
        if record.state != RecordState::Suspended {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("tenant '{tenant}' was resumed while it was being deleted"),
            ));
        }
        record.state = RecordState::Deleted;
        record.tokens.clear();
        record.oidc = None;
        Ok(())
    })
    .await
    .map(answer)
}

async fn republish(State(control): State<Arc<Control>>) -> Result<Json<Value>, ApiError> {
    let _one = control.changes.lock().await;
    let serial = control.publish().await.map_err(internal)?;
    Ok(Json(json!({ "bundle_serial": serial })))
}
