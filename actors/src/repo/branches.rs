//! Branch names as the engine sees them, and turning its opaque "no such branch" failures
//! into precise errors.

use omnigraph::db::Omnigraph;
use omnigraph::error::OmniError;

use crate::RepoError;

pub(crate) const MAIN: &str = "main";

pub(crate) fn contains(branches: &[String], name: &str) -> bool {
    branches.iter().any(|branch| branch == name)
}

/// Refuses a new branch whose name is a folder of an existing branch's (`review` while
/// `review/one` exists) or has an existing branch as a folder (`review/one` while `review`
/// exists). The engine keeps each branch's manifest under a directory named after it, so the
/// two would share storage: engine 0.8 fails with a storage error on the second, and the
/// graph's branches become unusable. Refused up front with a 409, as git refuses such refs.
pub(crate) fn refuse_folder_clash(existing: &[String], name: &str) -> Result<(), RepoError> {
    let clash = existing.iter().find(|other| {
        let (shorter, longer) = if other.len() < name.len() {
            (other.as_str(), name)
        } else {
            (name, other.as_str())
        };
        longer.len() > shorter.len()
            && longer.starts_with(shorter)
            && longer.as_bytes()[shorter.len()] == b'/'
    });
    match clash {
        Some(other) => Err(RepoError::Conflict {
            message: format!(
                "branch '{name}' cannot be created while branch '{other}' exists: one name would \
                 be a folder of the other, and a name cannot be both a branch and a folder of \
                 branches"
            ),
        }),
        None => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_cannot_be_a_folder_of_another() {
        let existing = vec![
            "main".to_string(),
            "review/one".to_string(),
            "0".to_string(),
        ];
        for clash in ["review", "0/0", "0/a/b"] {
            assert!(refuse_folder_clash(&existing, clash).is_err(), "{clash}");
        }
        for fine in [
            "review2",
            "review-one",
            "reviewer/x",
            "00",
            "main2",
            "review/two",
        ] {
            assert!(refuse_folder_clash(&existing, fine).is_ok(), "{fine}");
        }
    }
}
