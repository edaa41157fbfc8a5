//! Upstream omnigraph 0.8's policy YAML (groups, protected branches, allow rules), compiled
//! to Cedar. It is accepted as written for upstream, with the same validation rules, plus
//! this service's extra actions (`load`, `graph_create`, `graph_delete`). Since upstream's
//! `/load` is authorized as `change`, a rule granting `change` also grants `load`.

use std::collections::{BTreeMap, HashMap, HashSet};

use omnigraph_cloud_config::BranchName;
use serde::Deserialize;

use super::action::Action;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    protected_branches: Vec<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    id: String,
    allow: Allow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Allow {
    actors: Actors,
    actions: Vec<String>,
    #[serde(default)]
    branch_scope: Option<Scope>,
    #[serde(default)]
    target_branch_scope: Option<Scope>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Actors {
    group: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Scope {
    Any,
    Protected,
    Unprotected,
}

pub(super) struct Compiled {
    pub(super) cedar: String,
    /// Actor → the groups it is listed in.
    pub(super) groups: HashMap<String, Vec<String>>,
    pub(super) protected: HashSet<String>,
}

pub(super) fn compile(source: &str) -> Result<Compiled, String> {
    let file: PolicyFile =
        serde_yaml::from_str(source).map_err(|err| format!("invalid policy YAML: {err}"))?;
    if file.version != 1 {
        return Err(format!("policy version must be 1, not {}", file.version));
    }
    let mut ids = HashSet::new();
    let mut cedar = String::new();
    for rule in &file.rules {
        let id = rule.id.trim();
        if id.is_empty() {
            return Err("rule ids must not be blank".into());
        }
        if !ids.insert(id) {
            return Err(format!("duplicate rule id '{id}'"));
        }
        let group = &rule.allow.actors.group;
        if !file.groups.contains_key(group) {
            return Err(format!("rule '{id}' references undefined group '{group}'"));
        }
        if rule.allow.actions.is_empty() {
            return Err(format!("rule '{id}' must allow at least one action"));
        }
        if rule.allow.branch_scope.is_some() && rule.allow.target_branch_scope.is_some() {
            return Err(format!(
                "rule '{id}' may set branch_scope or target_branch_scope, not both"
            ));
        }
        let mut actions = Vec::new();
        for name in &rule.allow.actions {
            let action = Action::parse(name)
                .ok_or_else(|| format!("rule '{id}' names unknown action '{name}'"))?;
            let branch_scoped = matches!(
                action,
                Action::Read | Action::Export | Action::Change | Action::Load
            );
            let target_scoped = matches!(
                action,
                Action::BranchCreate
                    | Action::SchemaApply
                    | Action::BranchDelete
                    | Action::BranchMerge
            );
            if rule.allow.branch_scope.is_some() && !branch_scoped {
                return Err(format!(
                    "rule '{id}': branch_scope applies to read, export, change and load only, not '{name}'"
                ));
            }
            if rule.allow.target_branch_scope.is_some() && !target_scoped {
                return Err(format!(
                    "rule '{id}': target_branch_scope applies to branch_create, schema_apply, \
                     branch_delete and branch_merge only, not '{name}'"
                ));
            }
            actions.push(action);
            if action == Action::Change {
                actions.push(Action::Load);
            }
        }
        actions.dedup();
        let condition = match (rule.allow.branch_scope, rule.allow.target_branch_scope) {
            (Some(scope), _) => scope_condition(scope, "has_branch", "branch_is_protected"),
            (_, Some(scope)) => {
                scope_condition(scope, "has_target_branch", "target_branch_is_protected")
            }
            _ => None,
        };
        let action_list = actions
            .iter()
            .map(|action| format!("Omnigraph::Action::{}", literal(action.as_str())))
            .collect::<Vec<_>>()
            .join(", ");
        cedar.push_str(&format!(
            "@id({})\npermit (\n    principal in Omnigraph::Group::{},\n    action in [{action_list}],\n    resource\n){};\n",
            literal(id),
            literal(group),
            condition
                .map(|condition| format!("\nwhen {{ {condition} }}"))
                .unwrap_or_default(),
        ));
    }
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for (group, members) in &file.groups {
        for member in members {
            let member = member.trim();
            if member.is_empty() {
                return Err(format!("group '{group}' has a blank member"));
            }
            groups
                .entry(member.to_string())
                .or_default()
                .push(group.clone());
        }
    }
    // A protected branch is compared with canonical names only: a spelling no request can
    // name would protect nothing, so it is an error rather than a silent no-op.
    let mut protected = HashSet::new();
    for branch in file.protected_branches {
        let branch =
            BranchName::new(&branch).map_err(|err| format!("protected_branches: {err}"))?;
        protected.insert(branch.into_string());
    }
    Ok(Compiled {
        cedar,
        groups,
        protected,
    })
}

fn scope_condition(scope: Scope, has: &str, protected: &str) -> Option<String> {
    match scope {
        Scope::Any => None,
        Scope::Protected => Some(format!("context.{has} && context.{protected}")),
        Scope::Unprotected => Some(format!("context.{has} && !context.{protected}")),
    }
}

/// A Cedar string literal.
fn literal(value: &str) -> String {
    serde_json::to_string(value).expect("strings serialize")
}
