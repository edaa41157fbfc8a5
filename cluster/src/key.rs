//! The key of a repo: the tenant that owns it and the graph's id.

use std::fmt;

use omnigraph_cloud_config::{GraphId, TenantId};

/// Identifies one repo (graph) on the node: the tenant that owns it and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoKey {
    pub tenant: TenantId,
    pub graph: GraphId,
}

impl RepoKey {
    pub fn new(tenant: TenantId, graph: GraphId) -> RepoKey {
        RepoKey { tenant, graph }
    }
}

impl fmt::Display for RepoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.graph)
    }
}
