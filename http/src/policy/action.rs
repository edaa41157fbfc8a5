//! The actions a request can take, and [`Access`]: one authorization question (an action on
//! a graph or on the tenant, and the branches it touches).

use omnigraph_cloud_config::{BranchName, GraphId};

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
    pub(super) fn on_tenant(self) -> bool {
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
