//! Authorization: one Cedar decision per request, on a server-resolved actor and tenant.
//!
//! Every tenant has its own policy set, from `auth.policy_dir` (`<tenant>.cedar` or
//! `<tenant>.yaml`, upstream 0.8's policy form) or from the signed bundle. A tenant's policy
//! is only ever evaluated against that tenant's own resources: the resource entities are
//! built from the principal's tenant, which comes from the credential, so no policy text can
//! reach another tenant's graphs. Without a policy an authenticated actor may only `read`.
//! With authentication off (`auth.mode = "none"`) every action is allowed.
//!
//! Entities: `Omnigraph::Actor` (in `Omnigraph::Group`s), `Omnigraph::Tenant`, and
//! `Omnigraph::Graph` (in its tenant). Branches are the third level, carried in the context
//! as upstream does: `branch`, `target_branch` and whether each is protected.

mod action;
mod decision;
mod directory;
mod metrics;
mod schema;
mod store;
mod tenant_policy;
mod yaml;

pub use action::{Access, Action};
pub use schema::schema_source;
pub use store::PolicyStore;
pub use tenant_policy::{DEFAULT_POLICY, PolicyText, TenantPolicy};

pub(crate) use metrics::PolicyMetrics;
