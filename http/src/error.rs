//! The only place that knows HTTP statuses and the error body `{"error","code",...}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use omnigraph_cloud_actors::{ConflictDetails as RepoConflict, ErrorKind, RepoError, RowConflict};
use tracing::error;

use crate::dto::{ErrorOutput, ManifestConflictOutput, MergeConflictOutput};

/// How many merge conflicts the message lists before "and N more" (as upstream).
const MERGE_CONFLICTS_IN_MESSAGE: usize = 3;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
    /// Conflict details; boxed because they are rare and errors travel in `Result`s.
    conflict: Option<Box<ConflictDetails>>,
    /// For a 421: the node that holds the writer lease, where the write may be forwarded.
    /// Travels to the forwarding middleware as a response extension.
    holder: Option<Box<WriterAt>>,
}

/// Where a request should go instead: the node that holds a graph's writer lease (or its
/// placement owner), as a record in storage names it. A 421's response extension, read by
/// [`crate::forward`].
#[derive(Debug, Clone)]
pub(crate) struct WriterAt {
    pub(crate) holder: String,
    /// `host:port` of the holder's HTTP API.
    pub(crate) address: String,
    /// A read sent to the placement owner for cache affinity, answered here if it cannot be.
    pub(crate) read: bool,
}

#[derive(Debug, Default)]
struct ConflictDetails {
    merge_conflicts: Vec<MergeConflictOutput>,
    manifest_conflict: Option<ManifestConflictOutput>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
            conflict: None,
            holder: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A read this node sends to the graph's placement owner `node` at `address` (the
    /// forwarding middleware sends it, or answers it here after all).
    pub(crate) fn read_elsewhere(node: String, address: String) -> ApiError {
        let mut api = ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "not_owner",
            format!("reads of this graph are answered by node '{node}'"),
        );
        api.holder = Some(Box::new(WriterAt {
            holder: node,
            address,
            read: true,
        }));
        api
    }

    /// Answers with `Retry-After: seconds`.
    pub(crate) fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_secs = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A 429 (without `Retry-After`: see [`ApiError::with_retry_after`]).
    pub(crate) fn too_many_requests(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
    }

    /// A 503 with `Retry-After: 1`.
    pub(crate) fn unavailable(message: impl Into<String>) -> ApiError {
        let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        err.retry_after_secs = Some(1);
        err
    }

    /// A 500. The cause is logged here, once; the body does not carry internals.
    fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the cause is in the server log",
        )
    }

    fn conflict(err: RepoError) -> ApiError {
        let mut api = ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string());
        api.conflict = match err.conflict_details() {
            Some(RepoConflict::Merge(conflicts)) => {
                api.message = merge_conflicts_message(&conflicts);
                Some(Box::new(ConflictDetails {
                    merge_conflicts: conflicts.into_iter().map(merge_conflict_output).collect(),
                    manifest_conflict: None,
                }))
            }
            Some(RepoConflict::TableVersion {
                table_key,
                expected,
                actual,
            }) => Some(Box::new(ConflictDetails {
                merge_conflicts: Vec::new(),
                manifest_conflict: Some(ManifestConflictOutput {
                    table_key,
                    expected,
                    actual,
                }),
            })),
            None => None,
        };
        api
    }
}

impl From<RepoError> for ApiError {
    fn from(err: RepoError) -> ApiError {
        match err.kind() {
            // Exhaustive on purpose: a new kind must choose its status.
            ErrorKind::Invalid => ApiError::bad_request(err.to_string()),
            ErrorKind::NotFound => ApiError::not_found(err.to_string()),
            ErrorKind::Conflict => ApiError::conflict(err),
            ErrorKind::Forbidden => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", err.to_string())
            }
            ErrorKind::Unavailable => ApiError::unavailable(err.to_string()),
            // 503 like any unavailability, but without Retry-After: a blind retry could apply
            // the write twice.
            ErrorKind::OutcomeUnknown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                err.to_string(),
            ),
            // Like a read past its deadline, but without Retry-After: the write may still
            // land, and a blind retry could apply it twice.
            ErrorKind::DeadlineExceeded => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                err.to_string(),
            ),
            ErrorKind::Overloaded => {
                ApiError::too_many_requests(err.to_string()).with_retry_after(1)
            }
            // 421: this node may not write the graph. The holder is named in the message;
            // Retry-After is when its lease lapses if it is not renewed.
            ErrorKind::NotWriter => {
                let mut api = ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "not_writer",
                    err.to_string(),
                );
                api.retry_after_secs = Some(1);
                if let RepoError::NotWriter {
                    expires_in_ms,
                    holder,
                    address,
                    ..
                } = err
                {
                    api.retry_after_secs = Some(expires_in_ms.div_ceil(1000).max(1));
                    api.holder = address.map(|address| {
                        Box::new(WriterAt {
                            holder,
                            address,
                            read: false,
                        })
                    });
                } else if let RepoError::PlacedElsewhere { node, address, .. } = err {
                    api.holder = Some(Box::new(WriterAt {
                        holder: node,
                        address,
                        read: false,
                    }));
                }
                api
            }
            ErrorKind::Internal => ApiError::internal(&err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let conflict = self.conflict.map(|details| *details).unwrap_or_default();
        let body = ErrorOutput {
            error: self.message,
            code: self.code.to_string(),
            merge_conflicts: conflict.merge_conflicts,
            manifest_conflict: conflict.manifest_conflict,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(holder) = self.holder {
            response.extensions_mut().insert(*holder);
        }
        response
    }
}

fn merge_conflict_output(conflict: RowConflict) -> MergeConflictOutput {
    MergeConflictOutput {
        table_key: conflict.table_key,
        row_id: conflict.row_id,
        kind: conflict.kind.to_string(),
        message: conflict.message,
    }
}

/// `merge conflicts: node:Person:Alice (divergent_update); ...; and N more`.
fn merge_conflicts_message(conflicts: &[RowConflict]) -> String {
    let listed: Vec<String> = conflicts
        .iter()
        .take(MERGE_CONFLICTS_IN_MESSAGE)
        .map(|conflict| {
            let row = conflict.row_id.as_deref().unwrap_or("-");
            format!("{}:{} ({})", conflict.table_key, row, conflict.kind)
        })
        .collect();
    let mut message = format!("merge conflicts: {}", listed.join("; "));
    if conflicts.len() > MERGE_CONFLICTS_IN_MESSAGE {
        message.push_str(&format!(
            "; and {} more",
            conflicts.len() - MERGE_CONFLICTS_IN_MESSAGE
        ));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(row: &str) -> RowConflict {
        RowConflict {
            table_key: "node:Person".into(),
            row_id: Some(row.into()),
            kind: "divergent_update",
            message: "both sides changed".into(),
        }
    }

    #[test]
    fn merge_conflict_message_lists_three_then_counts() {
        let conflicts: Vec<_> = ["a", "b", "c", "d", "e"]
            .into_iter()
            .map(conflict)
            .collect();
        assert_eq!(
            merge_conflicts_message(&conflicts),
            "merge conflicts: node:Person:a (divergent_update); node:Person:b (divergent_update); \
             node:Person:c (divergent_update); and 2 more"
        );
    }
}
