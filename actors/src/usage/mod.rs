//! Usage metering: what each tenant's graphs used on this node, second by second, written as
//! immutable records under `{root}/_system/usage/` (docs/control-plane.md#usage-records).
//!
//! - [`meter`] counts, in memory: seconds a graph was warm, requests by kind, object-store
//!   requests and bytes by operation, bytes written;
//! - [`flush`] writes what was counted every `usage.flush_interval` and at shutdown, each
//!   record under an id fixed before its first attempt, with create-if-absent, so that a
//!   retried write never counts twice;
//! - [`fold`] turns records into totals: a pure function of the records, whatever their order
//!   or repetition.

pub mod flush;
pub mod fold;
pub mod meter;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use flush::{UsageFlush, UsageTask, read_records, read_records_for};
pub use fold::{Totals, UsageQuery, fold};
pub use meter::UsageMeter;

/// The format tag of a usage record.
pub const USAGE_FORMAT: &str = "omnigraph-usage/1";
/// Where usage records live under the root, one folder per UTC day.
pub const USAGE_DIR: &str = "_system/usage";

/// One flush of one node: immutable once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    pub format: String,
    /// `{node}-{boot ms}-{sequence}`: the same id on every attempt to write this record.
    pub id: String,
    pub node: String,
    /// The wall-clock span the record covers, in Unix milliseconds.
    pub from_ms: u64,
    pub to_ms: u64,
    pub graphs: Vec<GraphUsage>,
}

/// What one graph of one tenant used during a record's span. `graph` is empty for what a
/// tenant used outside any graph (its leases' objects, its graph listings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphUsage {
    pub tenant: String,
    pub graph: String,
    /// The seconds the graph was warm, as `[first, last]` Unix-second ranges, inclusive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<[u64; 2]>,
    /// Counts by Unix second.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seconds: BTreeMap<u64, Counts>,
}

/// Counts of one second (or, folded, of any span).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Requests answered, by kind: `read`, `write`, `manage`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, u64>,
    /// Object-store requests, by operation (`get`, `put`, `list`, `head`, `delete`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub store_requests: BTreeMap<String, u64>,
    /// Object-store bytes, by operation (bytes read by `get`, bytes sent by `put`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub store_bytes: BTreeMap<String, u64>,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        for (into, from) in [
            (&mut self.requests, &other.requests),
            (&mut self.store_requests, &other.store_requests),
            (&mut self.store_bytes, &other.store_bytes),
        ] {
            for (kind, count) in from {
                *into.entry(kind.clone()).or_default() += count;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.store_requests.is_empty() && self.store_bytes.is_empty()
    }
}
