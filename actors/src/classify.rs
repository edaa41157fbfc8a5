//! The only code that reads an error's text to decide what it means.
//!
//! The engine 0.8 reports some failures only as text (`OmniError::Lance(String)`, object-store
//! errors flattened into messages). Each pattern it is recognised by lives here, next to the
//! engine message it matches, so that an engine upgrade that rewords one is caught in one
//! place; everything above works on [`crate::ErrorKind`]s.

use omnigraph::error::{ManifestErrorKind, OmniError};

/// The store is unreachable or refusing load right now: the object-store client's retries
/// were exhausted on 5xx, throttling or connection errors. As opposed to a failure of the
/// request itself. Matched in object_store's and reqwest's messages.
pub(crate) fn is_store_unavailable(message: &str) -> bool {
    const SIGNS: &[&str] = &[
        "max_retries",
        "Service Unavailable",
        "ServiceUnavailable",
        "SlowDown",
        "error sending request",
        "connection closed",
        "Connection refused",
        "connection reset",
        "operation timed out",
    ];
    SIGNS.iter().any(|sign| message.contains(sign))
}

/// The engine's "table version N already exists for <table>": a publish computed a table
/// version another commit already took (engine `db/manifest/publisher.rs`; see
/// docs/known-engine-issues.md for the merge case).
pub(crate) fn is_stale_table_version(err: &OmniError) -> bool {
    matches!(err, OmniError::Lance(message)
        if message.contains("table version") && message.contains("already exists"))
}

/// The engine's "optimize requires a clean recovery state": a recovery sidecar exists, a
/// live write's included (engine `db/omnigraph/optimize.rs`).
pub(crate) fn is_unclean_recovery_state(err: &OmniError) -> bool {
    matches!(err, OmniError::Manifest(manifest)
        if manifest.kind == ManifestErrorKind::Conflict
            && manifest.message.contains("requires a clean recovery state"))
}

/// Lance refused a table schema the graph's schema asked for, e.g. a property named like a
/// column the engine adds itself (`id`): "LanceError(Schema): Duplicate field name". The
/// user's schema is at fault, not the node.
pub(crate) fn is_schema_refused_by_storage(err: &OmniError) -> bool {
    matches!(err, OmniError::Lance(message) if message.contains("LanceError(Schema)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_outages_are_recognised_in_object_store_messages() {
        assert!(is_store_unavailable(
            "Generic S3 error: Error after 3 retries, max_retries: 3, retry_timeout: 180s, \
             source: 503 Service Unavailable"
        ));
        assert!(is_store_unavailable(
            "Generic S3 error: error sending request for url (http://127.0.0.1:1/b/k)"
        ));
        assert!(!is_store_unavailable("Corrupt file: bad footer"));
        assert!(!is_store_unavailable("Object at location x not found"));
    }

    #[test]
    fn engine_messages_in_their_0_8_wording() {
        let stale = OmniError::Lance(
            "Concurrent modification: table version 5 already exists for node:Person".into(),
        );
        assert!(is_stale_table_version(&stale));
        for other in [
            OmniError::Lance("Dataset already exists: /x/edges/1".into()),
            OmniError::Lance("branch f1 already exists".into()),
            OmniError::DataFusion("table version already exists".into()),
        ] {
            assert!(!is_stale_table_version(&other), "{other}");
        }
        let unclean = OmniError::manifest_conflict(
            "optimize requires a clean recovery state; reopen the graph to run the recovery \
             sweep before optimizing",
        );
        assert!(is_unclean_recovery_state(&unclean));
        assert!(!is_unclean_recovery_state(&OmniError::manifest_conflict(
            "something else"
        )));
    }
}
