//! Branch names as the engine sees them, and turning its opaque "no such branch" failures
//! into precise errors.

use omnigraph::db::Omnigraph;
use omnigraph::error::OmniError;

use crate::RepoError;

pub(crate) const MAIN: &str = "main";

pub(crate) fn contains(branches: &[String], name: &str) -> bool {
    branches.iter().any(|branch| branch == name)
}

/// Explains an engine failure on `branch`: when the branch does not exist, that is the
/// cause (the engine reports it as a storage error, upstream as a 500). Only runs on the
/// error path, so successful requests pay nothing for it.
pub(crate) async fn explain_error(engine: &Omnigraph, branch: &str, err: OmniError) -> RepoError {
    if branch != MAIN
        && let Ok(existing) = engine.branch_list().await
        && !contains(&existing, branch)
    {
        return RepoError::BranchNotFound {
            branch: branch.to_string(),
            hint: "",
        };
    }
    RepoError::Engine(err)
}
