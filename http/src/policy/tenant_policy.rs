//! A tenant's policy: its text in either accepted form (Cedar, or upstream's YAML), compiled
//! and validated against the Omnigraph schema.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{PolicySet, ValidationMode, Validator};

use super::schema::schema;
use super::yaml;

/// Key under which the policy for tenants without their own is stored.
pub const DEFAULT_POLICY: &str = "_default";

/// A tenant's compiled policy.
pub struct TenantPolicy {
    pub(super) policies: PolicySet,
    /// Group memberships the policy itself declares (the YAML form's `groups`).
    pub(super) groups: HashMap<String, Vec<String>>,
    pub(super) protected: HashSet<String>,
    /// Upstream's YAML form knows its actors: anyone in no group is an "unknown actor".
    pub(super) knows_actors: bool,
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
    pub(super) fn read_only() -> TenantPolicy {
        TenantPolicy::compile(
            &PolicyText::Cedar(
                "permit (principal, action == Omnigraph::Action::\"read\", resource);".into(),
            ),
            "built-in read-only default",
        )
        .expect("the built-in policy is valid")
    }
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
