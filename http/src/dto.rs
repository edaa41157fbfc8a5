//! Request and response bodies. Field names, defaults and aliases follow upstream
//! `omnigraph-server` 0.8 exactly, so that the upstream CLI can talk to us; the graph
//! management bodies (`POST /graphs` and friends) are ours.

use omnigraph_cloud_config::GraphId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The `uri` of the answers that carry one (graph list and create, load, schema apply, branch
/// create and delete). Upstream puts the graph's storage location there: a server-side path or
/// bucket URL that a tenant of a hosted service must not see. The field stays, since
/// upstream's client types require it; its value is the graph's path in this API, relative to
/// the server and the same for every tenant.
pub(crate) fn graph_uri(graph: &GraphId) -> String {
    format!("/graphs/{graph}")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOutput {
    pub status: String,
    /// Version of omnigraph-cloud.
    pub version: String,
    /// Version of the OmniGraph engine this node embeds.
    pub engine_version: String,
    pub internal_schema_version: u32,
}

/// `GET /readyz`: whether the node should be sent requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyOutput {
    /// `ready` (200), `starting` (503: opening the graphs it had warm, at most 30 s) or
    /// `draining` (503: shutting down, finishing what it accepted).
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphListResponse {
    pub graphs: Vec<GraphListItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphListItem {
    pub graph_id: String,
    /// The graph's path in this API (`/graphs/{graph_id}`), never its storage location.
    pub uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateGraphRequest {
    pub graph_id: String,
    /// The graph's schema in OmniGraph's `.pg` language.
    pub schema_source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreateGraphOutput {
    pub graph_id: String,
    /// The graph's path in this API (`/graphs/{graph_id}`), never its storage location.
    pub uri: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteGraphOutput {
    pub graph_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WarmGraphOutput {
    pub graph_id: String,
    /// The graph was open on this node already; otherwise it is being opened now.
    pub already_warm: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct BranchQuery {
    /// Branch to read; `main` when absent.
    pub branch: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotOutput {
    pub branch: String,
    pub manifest_version: u64,
    pub internal_schema_version: u32,
    pub tables: Vec<SnapshotTableOutput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotTableOutput {
    pub table_key: String,
    pub table_path: String,
    pub table_version: u64,
    pub table_branch: Option<String>,
    pub row_count: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct QueryRequest {
    /// Query source (`.gq`); may hold several queries.
    pub query: String,
    /// Which query of the source to run; optional when it holds exactly one.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub branch: Option<String>,
    /// A graph commit id to read at, instead of a branch.
    #[serde(default)]
    pub snapshot: Option<String>,
}

/// Deprecated form of [`QueryRequest`] used by `POST /read` (and by the 0.8 CLI).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReadRequest {
    pub query_source: String,
    #[serde(default)]
    pub query_name: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub snapshot: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadOutput {
    pub query_name: String,
    pub target: ReadTargetOutput,
    pub row_count: usize,
    /// Projection order of the columns; omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    pub rows: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadTargetOutput {
    pub branch: Option<String>,
    pub snapshot: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRequest {
    #[serde(alias = "query_source")]
    pub query: String,
    #[serde(default, alias = "query_name")]
    pub name: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub branch: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOutput {
    pub branch: String,
    pub query_name: String,
    pub affected_nodes: usize,
    pub affected_edges: usize,
    pub actor_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IngestRequest {
    #[serde(default)]
    pub branch: Option<String>,
    /// Creates `branch` from this branch when it does not exist.
    #[serde(default)]
    pub from: Option<String>,
    /// `merge` (default), `append` or `overwrite`.
    #[serde(default)]
    pub mode: Option<String>,
    /// NDJSON records.
    pub data: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestOutput {
    /// The graph's path in this API (`/graphs/{graph_id}`), never its storage location.
    pub uri: String,
    pub branch: String,
    pub base_branch: Option<String>,
    pub branch_created: bool,
    pub mode: String,
    pub tables: Vec<IngestTableOutput>,
    pub actor_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestTableOutput {
    pub table_key: String,
    pub rows_loaded: usize,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ExportRequest {
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub type_names: Vec<String>,
    #[serde(default)]
    pub table_keys: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaOutput {
    pub schema_source: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SchemaApplyRequest {
    pub schema_source: String,
    #[serde(default)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaApplyOutput {
    /// The graph's path in this API (`/graphs/{graph_id}`), never its storage location.
    pub uri: String,
    pub supported: bool,
    pub applied: bool,
    pub step_count: usize,
    pub manifest_version: u64,
    /// Migration steps, each tagged by `kind` (`add_type`, `add_property`, ...).
    pub steps: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BranchListOutput {
    pub branches: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BranchCreateRequest {
    #[serde(default)]
    pub from: Option<String>,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BranchCreateOutput {
    /// The graph's path in this API (`/graphs/{graph_id}`), never its storage location.
    pub uri: String,
    pub from: String,
    pub name: String,
    pub actor_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BranchDeleteOutput {
    /// The graph's path in this API (`/graphs/{graph_id}`), never its storage location.
    pub uri: String,
    pub name: String,
    pub actor_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BranchMergeRequest {
    pub source: String,
    #[serde(default)]
    pub target: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BranchMergeOutput {
    pub source: String,
    pub target: String,
    /// `already_up_to_date`, `fast_forward` or `merged`.
    pub outcome: String,
    pub actor_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommitListOutput {
    pub commits: Vec<CommitOutput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommitOutput {
    pub graph_commit_id: String,
    pub manifest_branch: Option<String>,
    pub manifest_version: u64,
    pub parent_commit_id: Option<String>,
    pub merged_parent_commit_id: Option<String>,
    pub actor_id: Option<String>,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueriesCatalogOutput {
    pub queries: Vec<Value>,
}

/// Every error body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorOutput {
    pub error: String,
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `unprocessable_entity`,
    /// `too_many_requests`, `internal` or `unavailable`.
    pub code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_conflicts: Vec<MergeConflictOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_conflict: Option<ManifestConflictOutput>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MergeConflictOutput {
    pub table_key: String,
    pub row_id: Option<String>,
    /// `divergent_insert`, `divergent_update`, `delete_vs_update`, `orphan_edge`,
    /// `unique_violation`, `cardinality_violation` or `value_constraint_violation`.
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManifestConflictOutput {
    pub table_key: String,
    pub expected: u64,
    pub actual: u64,
}
