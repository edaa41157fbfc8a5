//! The request counters ([`Stats`], served at `/__proxy/stats`) and the attribution of an
//! object key to its tenant's graph.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::faults::Op;

/// Requests seen by the proxy (before faults are applied), by operation and by graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub by_op: BTreeMap<Op, u64>,
    /// Keyed `tenant/graph`, for keys under `tenants/{tenant}/graphs/{graph}.omni/`.
    pub by_graph: BTreeMap<String, BTreeMap<Op, u64>>,
    /// Keyed by bucket, then by the tenant whose objects the request is about (its graphs,
    /// its repos' leases and maintenance status), `""` for any other request.
    #[serde(default)]
    pub by_bucket: BTreeMap<String, BTreeMap<String, u64>>,
    pub injected_errors: u64,
    pub dropped: u64,
    /// Requests held by a hold rule, released or not.
    pub held: u64,
}

impl Stats {
    /// Counts one request, by operation, by bucket and tenant and, if its key is under a
    /// graph, by graph.
    pub(super) fn record(&mut self, op: Op, bucket: &str, key: &str) {
        *self.by_op.entry(op).or_default() += 1;
        *self
            .by_bucket
            .entry(bucket.to_string())
            .or_default()
            .entry(tenant_of(key).unwrap_or_default())
            .or_default() += 1;
        if let Some(graph) = graph_of(key) {
            *self
                .by_graph
                .entry(graph)
                .or_default()
                .entry(op)
                .or_default() += 1;
        }
    }
}

/// `tenant/graph` for keys under `tenants/{tenant}/graphs/{graph}.omni`.
fn graph_of(key: &str) -> Option<String> {
    let rest = &key[key.find("tenants/")? + "tenants/".len()..];
    let (tenant, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("graphs/")?;
    let graph = rest.split('/').next()?.strip_suffix(".omni")?;
    Some(format!("{tenant}/{graph}"))
}

/// The tenant whose objects `key` is about: under `tenants/{t}/graphs/`,
/// `_system/leases/{t}/` or `_system/maintenance/{t}/`.
fn tenant_of(key: &str) -> Option<String> {
    if let Some(graph) = graph_of(key) {
        return graph.split('/').next().map(str::to_string);
    }
    ["_system/leases/", "_system/maintenance/"]
        .iter()
        .find_map(|dir| {
            let rest = &key[key.find(dir)? + dir.len()..];
            let tenant = rest.split('/').next()?;
            (!tenant.is_empty() && rest.len() > tenant.len()).then(|| tenant.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::super::request::object_key;
    use super::*;

    #[test]
    fn attributes_keys_and_prefixes_to_graphs() {
        assert_eq!(
            graph_of("root/tenants/acme/graphs/g1.omni/_schema.pg"),
            Some("acme/g1".into())
        );
        assert_eq!(
            graph_of(&object_key(
                "/b",
                Some("list-type=2&prefix=tenants%2Facme%2Fgraphs%2Fg2.omni%2F")
            )),
            Some("acme/g2".into())
        );
        assert_eq!(graph_of("_system/probe/x"), None);
        assert_eq!(
            tenant_of("p/_system/leases/acme/g/writer.json"),
            Some("acme".into())
        );
        assert_eq!(
            tenant_of("_system/maintenance/acme/g.json"),
            Some("acme".into())
        );
        assert_eq!(tenant_of("p/tenants/acme/_tenant.json"), None);
        assert_eq!(tenant_of("_system/leases/"), None);
    }
}
