//! Fast open: the engine's open reads its text objects one after another (staging checks,
//! recovery sidecars, the schema and its contract). On the authority those reads are kept, so
//! reading them all at once first turns the open's chain of round trips into one.
//!
//! The names are the engine 0.8 layout's; a name that stops matching costs one wasted read and
//! the open's own read, never a wrong answer.

use futures::future::join_all;
use omnigraph::storage::StorageAdapter;

use super::CachingStorage;

const SCHEMA_FILES: [&str; 3] = ["_schema.pg", "_schema.ir.json", "__schema_state.json"];
const STAGING_SUFFIX: &str = ".staging";
const RECOVERY_DIR: &str = "__recovery";

/// Reads, at once, what opening the graph at `uri` will read. Failures are left for the open
/// to meet (and are not kept).
pub(crate) async fn before_open(storage: &CachingStorage, uri: &str) {
    let at = |name: &str| format!("{}/{name}", uri.trim_end_matches('/'));
    let texts = SCHEMA_FILES.map(&at);
    let staging = SCHEMA_FILES.map(|name| at(&format!("{name}{STAGING_SUFFIX}")));
    let recovery = at(RECOVERY_DIR);
    let reads = texts.iter().map(|uri| async move {
        let _ = storage.read_text(uri).await;
    });
    let checks = staging.iter().chain(&texts).map(|uri| async move {
        let _ = storage.exists(uri).await;
    });
    let listing = async {
        let _ = storage.list_dir(&recovery).await;
    };
    futures::join!(join_all(reads), join_all(checks), listing);
}
