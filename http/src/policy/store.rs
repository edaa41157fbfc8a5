//! The policy store: every tenant's policy, swapped as a whole when a signed bundle arrives,
//! and the per-request decision with its 403 message.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use omnigraph_cloud_config::{ConfigError, TenantId};

use super::action::Access;
use super::decision::evaluate;
use super::directory::load_dir;
use super::metrics::PolicyMetrics;
use super::tenant_policy::{DEFAULT_POLICY, PolicyText, TenantPolicy};
use crate::error::ApiError;
use crate::principal::{IdentitySource, Principal};

#[derive(Default)]
struct Snapshot {
    tenants: HashMap<String, Arc<TenantPolicy>>,
}

/// Every tenant's policy, swappable as a whole when a signed bundle arrives.
pub struct PolicyStore {
    /// From `auth.policy_dir`, loaded once at start.
    base: HashMap<String, Arc<TenantPolicy>>,
    current: ArcSwap<Snapshot>,
    read_only: TenantPolicy,
    enforcing: bool,
    metrics: Option<PolicyMetrics>,
}

impl PolicyStore {
    /// Loads `auth.policy_dir`. `enforcing` is false when authentication is off.
    pub(crate) fn load(
        dir: Option<&Path>,
        enforcing: bool,
        metrics: Option<PolicyMetrics>,
    ) -> Result<PolicyStore, ConfigError> {
        let base = match dir {
            Some(dir) => load_dir(dir)?,
            None => HashMap::new(),
        };
        Ok(PolicyStore {
            current: ArcSwap::from_pointee(Snapshot {
                tenants: base.clone(),
            }),
            base,
            read_only: TenantPolicy::read_only(),
            enforcing,
            metrics,
        })
    }

    /// Installs the bundle's policies over those of `auth.policy_dir`, in one swap.
    pub(crate) fn apply_bundle(&self, policies: HashMap<String, Arc<TenantPolicy>>) {
        let mut tenants = self.base.clone();
        tenants.extend(policies);
        self.current.store(Arc::new(Snapshot { tenants }));
    }

    /// Compiles a bundle's policies without installing them.
    pub(crate) fn compile_all(
        texts: &HashMap<String, PolicyText>,
        origin: &str,
    ) -> Result<HashMap<String, Arc<TenantPolicy>>, String> {
        let mut out = HashMap::new();
        for (tenant, text) in texts {
            if tenant != DEFAULT_POLICY && TenantId::new(tenant).is_err() {
                return Err(format!(
                    "policy key '{tenant}' is not a tenant id or '_default'"
                ));
            }
            let policy = TenantPolicy::compile(text, format!("{origin} ({tenant})"))
                .map_err(|err| format!("policy of '{tenant}': {err}"))?;
            out.insert(tenant.clone(), Arc::new(policy));
        }
        Ok(out)
    }

    /// One decision: `Ok` to proceed, or a 403 in upstream's message shape.
    pub fn authorize(&self, principal: &Principal, access: Access<'_>) -> Result<(), ApiError> {
        if !self.enforcing || principal.source == IdentitySource::Anonymous {
            return Ok(());
        }
        let actor = principal.actor.as_deref().unwrap_or("anonymous");
        let snapshot = self.current.load();
        let (policy, defaulted) = match snapshot
            .tenants
            .get(principal.tenant.as_str())
            .or_else(|| snapshot.tenants.get(DEFAULT_POLICY))
        {
            Some(policy) => (policy.as_ref(), false),
            None => (&self.read_only, true),
        };
        let mut groups: Vec<&str> = principal.groups.iter().map(String::as_str).collect();
        if let Some(declared) = policy.groups.get(actor) {
            groups.extend(declared.iter().map(String::as_str));
        }
        let deny = |message: String| {
            if let Some(metrics) = &self.metrics {
                metrics.denied(access.action.as_str());
            }
            Err(ApiError::forbidden(message))
        };
        if policy.knows_actors && groups.is_empty() {
            return deny(format!(
                "policy denied action '{}' for unknown actor '{actor}'",
                access.action.as_str()
            ));
        }
        match evaluate(policy, &principal.tenant, actor, &groups, access) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let mut message = format!("policy denied action '{}'", access.action.as_str());
                if let Some(branch) = access.branch {
                    message.push_str(&format!(" on branch '{branch}'"));
                }
                if let Some(branch) = access.target_branch {
                    message.push_str(&format!(" targeting branch '{branch}'"));
                }
                message.push_str(&format!(" for actor '{actor}'"));
                if defaulted {
                    message.push_str(&format!(
                        " (tenant '{}' has no policy: authenticated actors may only read)",
                        principal.tenant
                    ));
                }
                deny(message)
            }
            Err(err) => {
                tracing::error!(error = %err, origin = %policy.origin, "policy evaluation failed; denying");
                deny(format!(
                    "policy evaluation failed for action '{}'; denied",
                    access.action.as_str()
                ))
            }
        }
    }
}
