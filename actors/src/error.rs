//! Errors of the per-repo layer, with a coarse [`ErrorKind`] for the edge to map.

use omnigraph::error::{
    ManifestConflictDetails, ManifestErrorKind, MergeConflict, MergeConflictKind, OmniError,
};
use omnigraph_cloud_config::GraphId;
use thiserror::Error;

/// What a caller would do differently about an error. The HTTP layer maps each kind to
/// one status; a new kind is added only when a caller would act differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    NotFound,
    Conflict,
    Forbidden,
    Unavailable,
    /// Too much work queued for the repo; retry later.
    Overloaded,
    /// Another node holds the repo's writer lease: writes go there (or wait for the lease).
    NotWriter,
    /// The request may or may not have taken effect (its actor failed or it timed out):
    /// check before retrying.
    OutcomeUnknown,
    /// A write did not finish within `actors.call_timeout`: it may still be applied.
    DeadlineExceeded,
    Internal,
}

#[derive(Debug, Error)]
pub enum RepoError {
    #[error("graph '{graph}' not found")]
    GraphNotFound { graph: GraphId },
    #[error("graph '{graph}' already exists")]
    GraphExists { graph: GraphId },
    #[error("branch '{branch}' not found{hint}")]
    BranchNotFound { branch: String, hint: &'static str },
    #[error("branch '{branch}' already exists")]
    BranchExists { branch: String },
    /// Bad input detected before the engine was called.
    #[error("{message}")]
    Invalid { message: String },
    /// A request that is valid but cannot be applied in the current state.
    #[error("{message}")]
    Conflict { message: String },
    /// The repo cannot answer now (restarting, shutting down, timed out); retrying may work.
    #[error("{message}")]
    Unavailable { message: String },
    /// A write was not acknowledged and may or may not have been applied.
    #[error("{message}")]
    OutcomeUnknown { message: String },
    /// A write was not acknowledged within `actors.call_timeout`; it may still be applied.
    #[error("{message}")]
    DeadlineExceeded { message: String },
    /// The repo's write queue is full.
    #[error("{message}")]
    Overloaded { message: String },
    /// Another node (or process) holds the repo's writer lease; nothing was written.
    #[error(
        "graph '{graph}' is written by '{holder}', which holds its writer lease (epoch {epoch}, \
         expires in {}s unless renewed); nothing was written: send the write there, or retry \
         once the lease has expired",
        expires_in_ms.div_ceil(1000)
    )]
    NotWriter {
        graph: GraphId,
        holder: String,
        epoch: u64,
        expires_in_ms: u64,
        /// Where the holder answers HTTP, from its lease record (see
        /// `omnigraph_cloud_cluster::lease::LeaseRecord::address`): the write may be forwarded
        /// there.
        address: Option<String>,
    },
    /// Nobody holds the repo's writer lease and placement gives it to another node; nothing
    /// was written.
    #[error(
        "graph '{graph}' is placed on node '{node}', which takes its writes; nothing was \
         written: send the write there"
    )]
    PlacedElsewhere {
        graph: GraphId,
        node: String,
        /// `host:port` from the node's record in storage.
        address: String,
    },
    /// A broken invariant of our own; a bug, never the caller's fault.
    #[error("internal error: {message}")]
    Internal { message: String },
    /// An error of the engine, kept whole so the edge can render its details.
    #[error(transparent)]
    Engine(#[from] OmniError),
    /// An error of our own object-store access (listing, deleting graphs).
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl RepoError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RepoError::GraphNotFound { .. } | RepoError::BranchNotFound { .. } => {
                ErrorKind::NotFound
            }
            RepoError::GraphExists { .. }
            | RepoError::BranchExists { .. }
            | RepoError::Conflict { .. } => ErrorKind::Conflict,
            RepoError::Invalid { .. } => ErrorKind::Invalid,
            RepoError::Unavailable { .. } => ErrorKind::Unavailable,
            RepoError::Overloaded { .. } => ErrorKind::Overloaded,
            RepoError::NotWriter { .. } | RepoError::PlacedElsewhere { .. } => ErrorKind::NotWriter,
            RepoError::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            RepoError::DeadlineExceeded { .. } => ErrorKind::DeadlineExceeded,
            RepoError::Storage(err) if crate::classify::is_store_unavailable(&err.to_string()) => {
                ErrorKind::Unavailable
            }
            RepoError::Storage(_) | RepoError::Io(_) | RepoError::Internal { .. } => {
                ErrorKind::Internal
            }
            RepoError::Engine(err) => engine_error_kind(err),
        }
    }

    /// What a conflict was about, in terms the edge can render without knowing the engine.
    pub fn conflict_details(&self) -> Option<ConflictDetails> {
        match self {
            RepoError::Engine(OmniError::MergeConflicts(conflicts)) => Some(
                ConflictDetails::Merge(conflicts.iter().map(RowConflict::from).collect()),
            ),
            RepoError::Engine(OmniError::Manifest(manifest)) => match &manifest.details {
                Some(ManifestConflictDetails::ExpectedVersionMismatch {
                    table_key,
                    expected,
                    actual,
                }) => Some(ConflictDetails::TableVersion {
                    table_key: table_key.clone(),
                    expected: *expected,
                    actual: *actual,
                }),
                _ => None,
            },
            _ => None,
        }
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> RepoError {
        RepoError::Unavailable {
            message: message.into(),
        }
    }
}

/// The details of a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictDetails {
    /// A merge found rows both sides changed (or that break a constraint once merged).
    Merge(Vec<RowConflict>),
    /// A write was planned against a table version that has moved since.
    TableVersion {
        table_key: String,
        expected: u64,
        actual: u64,
    },
}

/// One conflicting row of a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowConflict {
    pub table_key: String,
    pub row_id: Option<String>,
    /// `divergent_insert`, `divergent_update`, `delete_vs_update`, `orphan_edge`,
    /// `unique_violation`, `cardinality_violation` or `value_constraint_violation`.
    pub kind: &'static str,
    pub message: String,
}

impl From<&MergeConflict> for RowConflict {
    fn from(conflict: &MergeConflict) -> RowConflict {
        RowConflict {
            table_key: conflict.table_key.clone(),
            row_id: conflict.row_id.clone(),
            kind: match conflict.kind {
                MergeConflictKind::DivergentInsert => "divergent_insert",
                MergeConflictKind::DivergentUpdate => "divergent_update",
                MergeConflictKind::DeleteVsUpdate => "delete_vs_update",
                MergeConflictKind::OrphanEdge => "orphan_edge",
                MergeConflictKind::UniqueViolation => "unique_violation",
                MergeConflictKind::CardinalityViolation => "cardinality_violation",
                MergeConflictKind::ValueConstraintViolation => "value_constraint_violation",
            },
            message: conflict.message.clone(),
        }
    }
}

/// Classifies engine errors as upstream omnigraph-server 0.8 does, except that a failure of
/// the store itself (unreachable, or refusing load) is `Unavailable` rather than `Internal`.
fn engine_error_kind(err: &OmniError) -> ErrorKind {
    let kind = match err {
        OmniError::Compiler(_) | OmniError::DataFusion(_) => ErrorKind::Invalid,
        OmniError::Manifest(manifest) => match manifest.kind {
            ManifestErrorKind::BadRequest => ErrorKind::Invalid,
            ManifestErrorKind::NotFound => ErrorKind::NotFound,
            ManifestErrorKind::Conflict => ErrorKind::Conflict,
            ManifestErrorKind::Internal => ErrorKind::Internal,
        },
        OmniError::MergeConflicts(_) | OmniError::AlreadyInitialized { .. } => ErrorKind::Conflict,
        OmniError::Policy(_) => ErrorKind::Forbidden,
        OmniError::Lance(_) if crate::classify::is_schema_refused_by_storage(err) => {
            ErrorKind::Invalid
        }
        OmniError::Lance(_) | OmniError::Io(_) => ErrorKind::Internal,
    };
    if kind == ErrorKind::Internal && crate::classify::is_store_unavailable(&err.to_string()) {
        return ErrorKind::Unavailable;
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_outages_are_unavailable_not_internal() {
        let outage = OmniError::Lance(
            "Generic S3 error: Error after 3 retries, max_retries: 3, retry_timeout: 180s, source: 503 Service Unavailable".into(),
        );
        assert_eq!(RepoError::Engine(outage).kind(), ErrorKind::Unavailable);
        let corrupt = OmniError::Lance("Corrupt file: bad footer".into());
        assert_eq!(RepoError::Engine(corrupt).kind(), ErrorKind::Internal);
    }
}
