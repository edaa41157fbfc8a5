//! One Cedar decision: the request's entities (the actor in its groups, the tenant, the
//! graph in its tenant), its branch context, and the authorizer's answer.

use std::collections::HashSet;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request,
    RestrictedExpression,
};
use omnigraph_cloud_config::{BranchName, TenantId};

use super::action::Access;
use super::schema::types;
use super::tenant_policy::TenantPolicy;

/// Whether `policy` allows `actor` (in `groups`) of `tenant` the `access`; an error when the
/// request cannot be built.
pub(super) fn evaluate(
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
