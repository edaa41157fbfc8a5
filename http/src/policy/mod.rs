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

mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use omnigraph_cloud_config::{BranchName, ConfigError, GraphId, TenantId};

use crate::auth::{AuthMetrics, IdentitySource, Principal};
use crate::error::ApiError;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Export,
    Change,
    Load,
    SchemaApply,
    BranchCreate,
    BranchDelete,
    BranchMerge,
    GraphCreate,
    GraphDelete,
    GraphList,
    InvokeQuery,
    Admin,
}

impl Action {
    pub const ALL: [Action; 13] = [
        Action::Read,
        Action::Export,
        Action::Change,
        Action::Load,
        Action::SchemaApply,
        Action::BranchCreate,
        Action::BranchDelete,
        Action::BranchMerge,
        Action::GraphCreate,
        Action::GraphDelete,
        Action::GraphList,
        Action::InvokeQuery,
        Action::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Export => "export",
            Action::Change => "change",
            Action::Load => "load",
            Action::SchemaApply => "schema_apply",
            Action::BranchCreate => "branch_create",
            Action::BranchDelete => "branch_delete",
            Action::BranchMerge => "branch_merge",
            Action::GraphCreate => "graph_create",
            Action::GraphDelete => "graph_delete",
            Action::GraphList => "graph_list",
            Action::InvokeQuery => "invoke_query",
            Action::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
    }

    /// Tenant-level actions act on the tenant itself rather than on one graph.
    fn on_tenant(self) -> bool {
        matches!(self, Action::GraphList)
    }
}

/// One authorization question: an action on a graph (or the tenant), and the branches it
/// touches. For branch creation and merges `branch` is the source and `target_branch` the
/// branch being created or merged into; for a branch delete only `target_branch` is set.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub action: Action,
    pub graph: Option<&'a GraphId>,
    pub branch: Option<&'a BranchName>,
    pub target_branch: Option<&'a BranchName>,
}

impl<'a> Access<'a> {
    pub fn graph(action: Action, graph: &'a GraphId) -> Access<'a> {
        Access {
            action,
            graph: Some(graph),
            branch: None,
            target_branch: None,
        }
    }

    pub fn tenant(action: Action) -> Access<'a> {
        Access {
            action,
            graph: None,
            branch: None,
            target_branch: None,
        }
    }

    pub fn on_branch(mut self, branch: &'a BranchName) -> Access<'a> {
        self.branch = Some(branch);
        self
    }

    pub fn targeting(mut self, branch: &'a BranchName) -> Access<'a> {
        self.target_branch = Some(branch);
        self
    }
}

/// A tenant's compiled policy.
pub struct TenantPolicy {
    policies: PolicySet,
    /// Group memberships the policy itself declares (the YAML form's `groups`).
    groups: HashMap<String, Vec<String>>,
    protected: HashSet<String>,
    /// Upstream's YAML form knows its actors: anyone in no group is an "unknown actor".
    knows_actors: bool,
    /// Where it came from, for logs and messages: a file path or "bundle serial N".
    pub origin: String,
}

/// The policy text of one tenant, in either accepted form.
#[derive(Debug, Clone)]
pub enum PolicyText {
    Cedar(String),
    Yaml(String),
}

impl TenantPolicy {
    pub fn compile(text: &PolicyText, origin: impl Into<String>) -> Result<TenantPolicy, String> {
        let (source, groups, protected, knows_actors) = match text {
            PolicyText::Cedar(source) => (source.clone(), HashMap::new(), HashSet::new(), false),
            PolicyText::Yaml(source) => {
                let compiled = yaml::compile(source)?;
                (compiled.cedar, compiled.groups, compiled.protected, true)
            }
        };
        let policies = PolicySet::from_str(&source).map_err(|err| format!("{err:?}"))?;
        let validation =
            Validator::new(schema().clone()).validate(&policies, ValidationMode::Strict);
        let errors: Vec<String> = validation
            .validation_errors()
            .map(|err| err.to_string())
            .collect();
        if !errors.is_empty() {
            return Err(format!(
                "policy does not validate against the Omnigraph schema: {}",
                errors.join("; ")
            ));
        }
        Ok(TenantPolicy {
            policies,
            groups,
            protected,
            knows_actors,
            origin: origin.into(),
        })
    }

    /// The built-in policy of a tenant without one: authenticated actors may only read.
    fn read_only() -> TenantPolicy {
        TenantPolicy::compile(
            &PolicyText::Cedar(
                "permit (principal, action == Omnigraph::Action::\"read\", resource);".into(),
            ),
            "built-in read-only default",
        )
        .expect("the built-in policy is valid")
    }
}

#[derive(Default)]
struct Snapshot {
    tenants: HashMap<String, Arc<TenantPolicy>>,
}

/// Key under which the policy for tenants without their own is stored.
pub const DEFAULT_POLICY: &str = "_default";

/// Every tenant's policy, swappable as a whole when a signed bundle arrives.
pub struct PolicyStore {
    /// From `auth.policy_dir`, loaded once at start.
    base: HashMap<String, Arc<TenantPolicy>>,
    current: ArcSwap<Snapshot>,
    read_only: TenantPolicy,
    enforcing: bool,
    metrics: Option<AuthMetrics>,
}

impl PolicyStore {
    /// Loads `auth.policy_dir`. `enforcing` is false when authentication is off.
    pub(crate) fn load(
        dir: Option<&Path>,
        enforcing: bool,
        metrics: Option<AuthMetrics>,
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
                metrics.policy_denied(access.action.as_str());
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

fn evaluate(
    policy: &TenantPolicy,
    tenant: &TenantId,
    actor: &str,
    groups: &[&str],
    access: Access<'_>,
) -> Result<bool, String> {
    let types = types();
    let uid = |ty: &EntityTypeName, id: &str| {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    };
    let tenant_uid = uid(&types.tenant, tenant.as_str());
    let group_uids: HashSet<EntityUid> = groups
        .iter()
        .map(|group| uid(&types.group, group))
        .collect();
    let principal = uid(&types.actor, actor);
    let mut entities = vec![
        Entity::new_no_attrs(principal.clone(), group_uids.clone()),
        Entity::new_no_attrs(tenant_uid.clone(), HashSet::new()),
    ];
    entities.extend(
        group_uids
            .into_iter()
            .map(|group| Entity::new_no_attrs(group, HashSet::new())),
    );
    let resource = match access.graph {
        Some(graph) if !access.action.on_tenant() => {
            let graph_uid = uid(&types.graph, graph.as_str());
            entities.push(Entity::new_no_attrs(
                graph_uid.clone(),
                HashSet::from([tenant_uid]),
            ));
            graph_uid
        }
        _ => tenant_uid,
    };
    let entities = Entities::from_entities(entities, None).map_err(|err| err.to_string())?;
    let protected =
        |branch: Option<&BranchName>| branch.is_some_and(|b| policy.protected.contains(b.as_str()));
    let context = Context::from_pairs([
        (
            "has_branch".to_string(),
            RestrictedExpression::new_bool(access.branch.is_some()),
        ),
        (
            "branch".to_string(),
            RestrictedExpression::new_string(
                access
                    .branch
                    .map(BranchName::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ),
        ),
        (
            "has_target_branch".to_string(),
            RestrictedExpression::new_bool(access.target_branch.is_some()),
        ),
        (
            "target_branch".to_string(),
            RestrictedExpression::new_string(
                access
                    .target_branch
                    .map(BranchName::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ),
        ),
        (
            "branch_is_protected".to_string(),
            RestrictedExpression::new_bool(protected(access.branch)),
        ),
        (
            "target_branch_is_protected".to_string(),
            RestrictedExpression::new_bool(protected(access.target_branch)),
        ),
    ])
    .map_err(|err| err.to_string())?;
    let action = types.actions[&access.action].clone();
    // The request is built here from fixed shapes, and every policy was validated against
    // the schema at load, so the request is not schema-checked again on each call.
    let request =
        Request::new(principal, action, resource, context, None).map_err(|err| err.to_string())?;
    let response = Authorizer::new().is_authorized(&request, &policy.policies, &entities);
    if let Some(err) = response.diagnostics().errors().next() {
        // Cedar skips a policy whose evaluation errs; the decision stands, but say so.
        tracing::warn!(error = %err, origin = %policy.origin, "a policy failed to evaluate and was skipped");
    }
    Ok(response.decision() == Decision::Allow)
}

const SCHEMA: &str = r#"
namespace Omnigraph {
    type RequestContext = {
        has_branch: Bool,
        branch: String,
        has_target_branch: Bool,
        target_branch: String,
        branch_is_protected: Bool,
        target_branch_is_protected: Bool,
    };

    entity Group;
    entity Actor in [Group];
    entity Tenant;
    entity Graph in [Tenant];

    action "read", "export", "change", "load", "schema_apply", "branch_create",
           "branch_delete", "branch_merge", "graph_create", "graph_delete", "invoke_query"
        appliesTo { principal: Actor, resource: Graph, context: RequestContext };
    action "graph_list"
        appliesTo { principal: Actor, resource: Tenant, context: RequestContext };
    action "admin"
        appliesTo { principal: Actor, resource: [Graph, Tenant], context: RequestContext };
}
"#;

/// The Cedar schema every policy is validated against (documented in docs/auth.md).
pub fn schema_source() -> &'static str {
    SCHEMA
}

fn schema() -> &'static Schema {
    static SCHEMA_CELL: OnceLock<Schema> = OnceLock::new();
    SCHEMA_CELL.get_or_init(|| {
        Schema::from_cedarschema_str(SCHEMA)
            .expect("the built-in schema parses")
            .0
    })
}

struct Types {
    actor: EntityTypeName,
    group: EntityTypeName,
    tenant: EntityTypeName,
    graph: EntityTypeName,
    actions: HashMap<Action, EntityUid>,
}

fn types() -> &'static Types {
    static TYPES: OnceLock<Types> = OnceLock::new();
    TYPES.get_or_init(|| {
        let name = |n: &str| EntityTypeName::from_str(n).expect("valid type name");
        let action_type = name("Omnigraph::Action");
        Types {
            actor: name("Omnigraph::Actor"),
            group: name("Omnigraph::Group"),
            tenant: name("Omnigraph::Tenant"),
            graph: name("Omnigraph::Graph"),
            actions: Action::ALL
                .into_iter()
                .map(|action| {
                    (
                        action,
                        EntityUid::from_type_name_and_id(
                            action_type.clone(),
                            EntityId::new(action.as_str()),
                        ),
                    )
                })
                .collect(),
        }
    })
}

/// Reads `<tenant>.cedar` / `<tenant>.yaml` (or `.yml`) files; `_default.*` applies to
/// tenants without their own. Any unreadable, unparsable or ambiguous file is an error.
fn load_dir(dir: &Path) -> Result<HashMap<String, Arc<TenantPolicy>>, ConfigError> {
    let key = "auth.policy_dir";
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|err| {
        ConfigError::invalid(key, &shown, &format!("a readable directory ({err})"))
    })?;
    let mut texts: HashMap<String, (PolicyText, String)> = HashMap::new();
    for entry in entries {
        let path = entry
            .map_err(|err| {
                ConfigError::invalid(key, &shown, &format!("a readable directory ({err})"))
            })?
            .path();
        let (Some(stem), Some(extension)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let file = path.display().to_string();
        let read = || {
            std::fs::read_to_string(&path).map_err(|err| {
                ConfigError::invalid(key, &file, &format!("a readable file ({err})"))
            })
        };
        let text = match extension {
            "cedar" => PolicyText::Cedar(read()?),
            "yaml" | "yml" => PolicyText::Yaml(read()?),
            _ => continue,
        };
        if stem != DEFAULT_POLICY && TenantId::new(stem).is_err() {
            return Err(ConfigError::invalid(
                key,
                &file,
                "policy files named <tenant>.cedar, <tenant>.yaml or _default.*",
            ));
        }
        if let Some((_, other)) = texts.insert(stem.to_string(), (text, file.clone())) {
            return Err(ConfigError::invalid(
                key,
                &file,
                &format!("one policy file per tenant ({other} is the same tenant)"),
            ));
        }
    }
    texts
        .into_iter()
        .map(|(tenant, (text, file))| {
            TenantPolicy::compile(&text, file.clone())
                .map(|policy| (tenant, Arc::new(policy)))
                .map_err(|err| ConfigError::invalid(key, &file, &format!("a valid policy: {err}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every policy in docs/auth.md compiles against the schema.
    #[test]
    fn the_cookbook_policies_validate() {
        let doc = include_str!("../../../docs/auth.md");
        let mut blocks = 0;
        for (fence, form) in [("```cedar\n", "cedar"), ("```yaml\n", "yaml")] {
            for block in doc.split(fence).skip(1) {
                let source = block.split("```").next().unwrap();
                if source.contains("namespace Omnigraph") {
                    continue;
                }
                let text = match form {
                    "cedar" => PolicyText::Cedar(source.to_string()),
                    _ => PolicyText::Yaml(source.to_string()),
                };
                TenantPolicy::compile(&text, "docs/auth.md")
                    .unwrap_or_else(|err| panic!("{err}\n{source}"));
                blocks += 1;
            }
        }
        assert!(blocks >= 4, "found {blocks} policy blocks");
    }

    #[test]
    fn yaml_rules_are_validated_as_upstream_does() {
        let bad = [
            ("version: 2\n", "version must be 1"),
            (
                "version: 1\nrules:\n  - id: r\n    allow: {actors: {group: ghost}, actions: [read]}\n",
                "undefined group 'ghost'",
            ),
            (
                "version: 1\ngroups: {g: [a]}\nrules:\n  - id: r\n    allow: {actors: {group: g}, actions: [branch_merge], branch_scope: any}\n",
                "branch_scope applies to",
            ),
            (
                "version: 1\ngroups: {g: [a]}\nrules:\n  - id: r\n    allow: {actors: {group: g}, actions: [fly]}\n",
                "unknown action 'fly'",
            ),
            (
                "version: 1\ngroups: {g: [a]}\nrules:\n  - {id: r, allow: {actors: {group: g}, actions: [read]}}\n  - {id: r, allow: {actors: {group: g}, actions: [read]}}\n",
                "duplicate rule id 'r'",
            ),
        ];
        for (source, needle) in bad {
            let err = TenantPolicy::compile(&PolicyText::Yaml(source.into()), "t")
                .err()
                .unwrap_or_else(|| panic!("accepted: {source}"));
            assert!(err.contains(needle), "{err}");
        }
        let err = TenantPolicy::compile(
            &PolicyText::Cedar(
                "permit (principal, action == Omnigraph::Action::\"fly\", resource);".into(),
            ),
            "t",
        )
        .err()
        .expect("an unknown action does not validate");
        assert!(err.contains("validate"), "{err}");
    }
}
