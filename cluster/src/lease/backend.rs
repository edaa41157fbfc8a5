//! What the lease protocol needs from a store: read an object with its version, write it only
//! if it is absent or still at a given version, and list a folder. The object-store backend
//! serves S3 and friends, the local one `file://` roots, the memory one tests and simulations.

use async_trait::async_trait;

use super::LeaseError;

/// An object as read, with the version a conditional write must name to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub bytes: Vec<u8>,
    pub version: String,
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the object's new version.
    Written(String),
    /// The precondition failed: the object exists (create), or is no longer at the expected
    /// version, or is gone (update).
    Conflict,
}

/// A store of small objects with conditional writes. Paths are relative to the store's root,
/// `/`-separated.
#[async_trait]
pub trait LeaseBackend: Send + Sync + 'static {
    async fn read(&self, path: &str) -> Result<Option<Stored>, LeaseError>;

    /// Writes `bytes` at `path`: create-if-absent when `expected` is `None`, else
    /// update-if-the-version-matches.
    async fn write(
        &self,
        path: &str,
        bytes: Vec<u8>,
        expected: Option<String>,
    ) -> Result<CasOutcome, LeaseError>;

    /// Every object under the folder `dir`, as (root-relative path, version).
    async fn list(&self, dir: &str) -> Result<Vec<(String, String)>, LeaseError>;
}

pub(super) fn storage_error(err: impl std::fmt::Display) -> LeaseError {
    LeaseError::Storage(err.to_string())
}
