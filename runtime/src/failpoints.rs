//! Failpoints at the engine's commit phases, for chaos runs: in a build with the `chaos`
//! feature, `OMNIGRAPH_FAILPOINTS` arms the engine's named points at start, so that a scenario
//! can stop a writer exactly between two phases of a commit (docs/chaos.md). Other builds
//! refuse to start with it set rather than ignore it.
//!
//! `OMNIGRAPH_FAILPOINTS` is `point=action` pairs separated by `;`. An action is `abort`
//! (the process aborts when it reaches the point, like a `kill -9` there), `abort(N)` (at the
//! point's N-th pass), or any action of the `fail` crate (`return`, `panic`, `sleep(ms)`,
//! `delay(ms)`, with its `p%` and `N*` prefixes and `->` chains).

/// The environment variable that arms failpoints.
pub(crate) const VARIABLE: &str = "OMNIGRAPH_FAILPOINTS";

/// One point and what it does.
#[cfg(any(feature = "chaos", test))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Armed {
    pub point: String,
    pub action: Action,
}

#[cfg(any(feature = "chaos", test))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Abort the process at the point's N-th pass (1: the first).
    Abort(u64),
    /// An action in the `fail` crate's syntax.
    Fail(String),
}

/// Parses the variable's value against the names of the engine's failpoints.
#[cfg(any(feature = "chaos", test))]
pub(crate) fn parse(value: &str, known: &[&str]) -> Result<Vec<Armed>, String> {
    let mut armed = Vec::new();
    for pair in value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (point, action) = pair
            .split_once('=')
            .ok_or_else(|| format!("{VARIABLE}: '{pair}' is not point=action"))?;
        let (point, action) = (point.trim(), action.trim());
        if !known.contains(&point) {
            return Err(format!(
                "{VARIABLE}: the engine has no failpoint '{point}'; it has: {}",
                known.join(", ")
            ));
        }
        let action = match action {
            "abort" => Action::Abort(1),
            _ if action.starts_with("abort(") && action.ends_with(')') => {
                let count = &action["abort(".len()..action.len() - 1];
                match count.parse::<u64>() {
                    Ok(count) if count > 0 => Action::Abort(count),
                    _ => {
                        return Err(format!(
                            "{VARIABLE}: abort(N) takes a pass number of 1 or more, not '{count}'"
                        ));
                    }
                }
            }
            "" => return Err(format!("{VARIABLE}: '{point}' has no action")),
            _ => Action::Fail(action.to_string()),
        };
        armed.push(Armed {
            point: point.to_string(),
            action,
        });
    }
    Ok(armed)
}

/// The engine's failpoints, by name.
#[cfg(feature = "chaos")]
fn known() -> Vec<&'static str> {
    use omnigraph::failpoints::names::*;
    vec![
        BRANCH_DELETE_BEFORE_TABLE_CLEANUP,
        BRANCH_MERGE_ADOPT_AFTER_APPEND_PRE_UPSERT,
        BRANCH_MERGE_ADOPT_AFTER_UPSERT_PRE_DELETE,
        BRANCH_MERGE_POST_PHASE_B_PRE_MANIFEST_COMMIT,
        BRANCH_MERGE_REWRITE_AFTER_DELETE_PRE_INDEX,
        BRANCH_MERGE_REWRITE_AFTER_MERGE_PRE_DELETE,
        CLASSIFY_FRESH_READ,
        CLEANUP_RECONCILE_FORK,
        CLEANUP_RESOLVE_BRANCH_SNAPSHOT,
        CLEANUP_TABLE_GC,
        ENSURE_INDICES_POST_PHASE_B_PRE_MANIFEST_COMMIT,
        ENSURE_INDICES_POST_STAGE_PRE_COMMIT_BTREE,
        FORK_BEFORE_CLASSIFY,
        FORK_BEFORE_RECLAIM,
        GRAPH_PUBLISH_AFTER_MANIFEST_COMMIT,
        GRAPH_PUBLISH_BEFORE_COMMIT_APPEND,
        INIT_AFTER_COORDINATOR_INIT,
        INIT_AFTER_SCHEMA_CONTRACT_WRITTEN,
        INIT_AFTER_SCHEMA_PG_WRITTEN,
        MUTATION_DELETE_NODE_PRE_PRIMARY_DELETE,
        MUTATION_POST_FINALIZE_PRE_PUBLISHER,
        OPTIMIZE_BEFORE_COMPACT,
        OPTIMIZE_INJECT_REINDEX_CONFLICT,
        OPTIMIZE_POST_PHASE_B_PRE_MANIFEST_COMMIT,
        RECOVERY_BEFORE_ROLL_FORWARD_PUBLISH,
        RECOVERY_ORPHAN_DISCARD_AUDIT_APPEND,
        RECOVERY_RECORD_AUDIT,
        RECOVERY_SIDECAR_CONFIRM,
        RECOVERY_SIDECAR_DELETE,
        RECOVERY_SIDECAR_LIST,
        RECOVERY_SIDECAR_WRITE,
        SCHEMA_APPLY_AFTER_MANIFEST_COMMIT,
        SCHEMA_APPLY_AFTER_STAGING_WRITE,
        SCHEMA_APPLY_BEFORE_STAGING_WRITE,
        PUBLISH_LOAD_STATE_RETRYABLE_CONTENTION,
    ]
}

/// Arms the points `OMNIGRAPH_FAILPOINTS` names; an error for a bad value.
#[cfg(feature = "chaos")]
pub(crate) fn arm_from_env() -> Result<(), String> {
    let Ok(value) = std::env::var(VARIABLE) else {
        return Ok(());
    };
    for armed in parse(&value, &known())? {
        let point = armed.point.clone();
        match armed.action {
            Action::Abort(at) => {
                let passes = std::sync::atomic::AtomicU64::new(0);
                fail::cfg_callback(armed.point, move || {
                    let pass = passes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if pass == at {
                        eprintln!("failpoint {point}: aborting the process at pass {pass}");
                        std::process::abort();
                    }
                })
            }
            Action::Fail(action) => fail::cfg(armed.point, &action),
        }
        .map_err(|err| format!("{VARIABLE}: {err}"))?;
    }
    eprintln!("warning: a chaos build with failpoints armed: {value}");
    Ok(())
}

/// Without the `chaos` feature there is nothing to arm: refuse to start with it set.
#[cfg(not(feature = "chaos"))]
pub(crate) fn arm_from_env() -> Result<(), String> {
    match std::env::var_os(VARIABLE) {
        None => Ok(()),
        Some(_) => Err(format!(
            "{VARIABLE} is set, but this build has no failpoints: build with \
             `cargo build -p omnigraph-cloud --features chaos` (docs/chaos.md)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["a.point", "b.point"];

    #[test]
    fn pairs_parse_with_abort_counts_and_fail_actions() {
        let armed = parse(" a.point=abort ; b.point=1*off->return;", KNOWN).unwrap();
        assert_eq!(
            armed,
            vec![
                Armed {
                    point: "a.point".into(),
                    action: Action::Abort(1)
                },
                Armed {
                    point: "b.point".into(),
                    action: Action::Fail("1*off->return".into())
                },
            ]
        );
        assert_eq!(
            parse("a.point=abort(3)", KNOWN).unwrap()[0].action,
            Action::Abort(3)
        );
    }

    #[test]
    fn unknown_points_and_bad_actions_are_refused_with_the_reason() {
        let unknown = parse("c.point=abort", KNOWN).unwrap_err();
        assert!(unknown.contains("no failpoint 'c.point'") && unknown.contains("a.point, b.point"));
        assert!(
            parse("a.point", KNOWN)
                .unwrap_err()
                .contains("not point=action")
        );
        assert!(parse("a.point=", KNOWN).unwrap_err().contains("no action"));
        assert!(
            parse("a.point=abort(0)", KNOWN)
                .unwrap_err()
                .contains("1 or more")
        );
        assert!(
            parse("a.point=abort(x)", KNOWN)
                .unwrap_err()
                .contains("not 'x'")
        );
    }
}
