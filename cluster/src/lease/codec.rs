//! Where lease objects live and how they are written: paths, the JSON record, nonces.

use omnigraph_cloud_config::{GraphId, TenantId};

use super::LeaseError;
use super::record::{LeaseKind, LeaseRecord};
use crate::RepoKey;

/// The folder of every lease object, under the storage root.
pub const LEASE_DIR: &str = "_system/leases";

/// A lease object as found by [`super::LeaseStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLease {
    pub key: RepoKey,
    pub kind: LeaseKind,
    /// Changes whenever the object is written (its ETag, or its modification time).
    pub version: String,
}

/// `_system/leases/{tenant}/{graph}/{kind}.json`, relative to the root.
pub(super) fn lease_path(key: &RepoKey, kind: LeaseKind) -> String {
    format!("{LEASE_DIR}/{}/{}/{}.json", key.tenant, key.graph, kind)
}

/// The lease a root-relative path names, or `None` for anything else under the folder.
pub(super) fn parse_lease_path(relative: &str, version: &str) -> Option<ListedLease> {
    let rest = relative.strip_prefix(LEASE_DIR)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (tenant, graph, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let kind = LeaseKind::parse(file.strip_suffix(".json")?)?;
    let tenant = TenantId::new(tenant).ok()?;
    let graph = GraphId::new(graph).ok()?;
    Some(ListedLease {
        key: RepoKey::new(tenant, graph),
        kind,
        version: version.to_string(),
    })
}

pub(super) fn encode(record: &LeaseRecord) -> Vec<u8> {
    serde_json::to_vec_pretty(record).expect("a lease record serializes")
}

pub(super) fn decode(path: &str, bytes: &[u8]) -> Result<LeaseRecord, LeaseError> {
    serde_json::from_slice(bytes).map_err(|err| LeaseError::Corrupt {
        path: path.to_string(),
        message: err.to_string(),
    })
}

/// The nonce of a stored record (a lease, or any object written through a lease backend, such
/// as a node record): its version where the store has no ETag.
pub(super) fn decode_nonce(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Nonce {
        nonce: String,
    }
    serde_json::from_slice::<Nonce>(bytes)
        .ok()
        .map(|record| record.nonce)
}

/// 128 random bits, hex: unique per write (see the module docs).
pub(crate) fn nonce() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_path_round_trips_and_nothing_else_parses() {
        let key = RepoKey::new(TenantId::new("acme").unwrap(), GraphId::new("g-1").unwrap());
        let path = lease_path(&key, LeaseKind::Recovery);
        assert_eq!(path, "_system/leases/acme/g-1/recovery.json");
        let listed = parse_lease_path(&path, "v1").unwrap();
        assert_eq!((listed.key, listed.kind), (key, LeaseKind::Recovery));
        for other in [
            "_system/leases/acme/g-1/recovery.lock",
            "_system/leases/acme/g-1/reader.json",
            "_system/leases/acme/g-1/x/writer.json",
            "_system/leases/ACME!/g/writer.json",
            "_system/other/acme/g/writer.json",
        ] {
            assert!(parse_lease_path(other, "v").is_none(), "{other}");
        }
    }
}
