//! The tenant directory: one record per tenant, `{root}/tenants/{tenant}/_tenant.json`, and the
//! bundle made from all of them. The records are the control plane's only state, and the bundle
//! is a function of them, so listing the records rebuilds everything.

use std::collections::BTreeMap;

use omnigraph_cloud_actors::{GraphStore, RepoError};
use omnigraph_cloud_config::{StorageRoot, TenantId, TenantLimitsOverride};
use omnigraph_cloud_http::bundle::BundlePayload;
use omnigraph_cloud_http::bundle_tenants::{
    BundleIssuer, BundleTenant, BundleToken, TenantState, parse_tenant_root,
};
use serde::{Deserialize, Serialize};

const TENANTS_DIR: &str = "tenants";
const RECORD: &str = "_tenant.json";

/// One tenant as the control plane knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantRecord {
    pub(crate) tenant: String,
    pub(crate) state: RecordState,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
    /// Its tokens, by SHA-256 only: the secret is shown once, when issued.
    #[serde(default)]
    pub(crate) tokens: Vec<TokenRecord>,
    /// Its limits, over the nodes' configured ones (`[limits.tenants.<t>]` keys).
    #[serde(default)]
    pub(crate) quotas: TenantLimitsOverride,
    /// Its own storage root, fixed at creation; `None`: the control plane's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage_root: Option<String>,
    /// Its own identity provider, whose tokens act in this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) oidc: Option<BundleIssuer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RecordState {
    Active,
    Suspended,
    /// Deleted: out of the bundle, so its tokens mean nothing; the record stays as a tombstone.
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRecord {
    pub(crate) id: String,
    pub(crate) sha256: String,
    pub(crate) actor: String,
    pub(crate) created_ms: u64,
}

fn record_path(tenant: &str) -> String {
    format!("{TENANTS_DIR}/{tenant}/{RECORD}")
}

/// The tenant's record, if the control plane ever made one.
pub(crate) async fn load(
    store: &GraphStore,
    tenant: &str,
) -> Result<Option<TenantRecord>, RepoError> {
    Ok(load_versioned(store, tenant)
        .await?
        .map(|(record, _)| record))
}

/// The tenant's record with the version [`save_if`] must name to replace it.
pub(crate) async fn load_versioned(
    store: &GraphStore,
    tenant: &str,
) -> Result<Option<(TenantRecord, String)>, RepoError> {
    let Some((bytes, version)) = store
        .get_system_object_versioned(&record_path(tenant))
        .await?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(|record| Some((record, version)))
        .map_err(|err| RepoError::Internal {
            message: format!("tenant record of '{tenant}' is unreadable: {err}"),
        })
}

/// Every tenant record under the root, sorted by tenant (a tenant folder without a record,
/// made by a node for a tenant of its static tokens, is not one).
pub(crate) async fn load_all(store: &GraphStore) -> Result<Vec<TenantRecord>, RepoError> {
    let mut records = Vec::new();
    for tenant in store.list_folders(TENANTS_DIR).await? {
        if let Some(record) = load(store, &tenant).await? {
            records.push(record);
        }
    }
    Ok(records)
}

/// The tenants with a root of their own, as the records say (deleted ones too: their graphs,
/// if any were left, are still there).
pub(crate) fn tenant_roots(records: &[TenantRecord]) -> BTreeMap<TenantId, StorageRoot> {
    records
        .iter()
        .filter_map(|record| {
            let tenant = TenantId::new(&record.tenant).ok()?;
            let root = parse_tenant_root(record.storage_root.as_deref()?).ok()?;
            Some((tenant, root))
        })
        .collect()
}

/// Writes `record` if its stored version is still `expected` (`None`: no record yet);
/// `false` when another control-plane process changed it first.
pub(crate) async fn save_if(
    store: &GraphStore,
    record: &TenantRecord,
    expected: Option<String>,
) -> Result<bool, RepoError> {
    let bytes = serde_json::to_vec_pretty(record).expect("a tenant record serializes");
    store
        .put_system_object_if(&record_path(&record.tenant), bytes, expected)
        .await
}

/// The bundle payload the records make, at `serial`: every tenant with its state and tokens
/// (a deleted one suspended, without tokens), and its quotas as its limits. A function of the
/// records alone.
pub(crate) fn bundle_payload(records: &[TenantRecord], serial: u64) -> BundlePayload {
    let mut tenants = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for record in records {
        // A deleted tenant stays suspended: its tokens are gone, and an identity it has
        // elsewhere (an OIDC issuer, a node's own tokens file) must not come back with it.
        let state = match record.state {
            RecordState::Active => TenantState::Active,
            RecordState::Suspended | RecordState::Deleted => TenantState::Suspended,
        };
        let tokens = record
            .tokens
            .iter()
            .map(|token| BundleToken {
                sha256: token.sha256.clone(),
                actor: token.actor.clone(),
                groups: Vec::new(),
            })
            .collect();
        let tenant = BundleTenant {
            state,
            tokens,
            storage_root: record.storage_root.clone(),
            // A deleted tenant's issuer is unbound: its tokens must not act in it any more.
            oidc: match record.state {
                RecordState::Deleted => None,
                _ => record.oidc.clone(),
            },
        };
        tenants.insert(record.tenant.clone(), tenant);
        if record.quotas != TenantLimitsOverride::default() {
            limits.insert(record.tenant.clone(), record.quotas.clone());
        }
    }
    BundlePayload {
        version: 1,
        serial,
        issued_at: None,
        jwks: BTreeMap::new(),
        policies: BTreeMap::new(),
        actor_allowlist: None,
        limits,
        tenants,
    }
}
