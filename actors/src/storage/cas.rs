//! Conditional writes of soft state under the node's root: an object is read with a version,
//! and replaced only if it is still at that version. On S3 the version is the ETag and the
//! store checks it (`If-Match`, `If-None-Match`). A local root has no such write, so the
//! version is a hash of the bytes, checked and replaced under the file lock local leases use
//! ([`omnigraph_cloud_cluster::lease::write_locked`]).

use std::hash::{Hash, Hasher};

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions, UpdateVersion};
use omnigraph_cloud_cluster::lease::{read_locked, write_locked};

use super::roots::{Location, Root};
use crate::RepoError;

/// The object at `relative` with its version, or `None` if absent.
pub(super) async fn read(
    root: &Root,
    relative: &str,
) -> Result<Option<(Bytes, String)>, RepoError> {
    if let Location::Local(dir) = &root.location {
        let path = dir.join(relative);
        let found = blocking(move || read_locked(&path)).await?;
        return Ok(found.map(|bytes| {
            let version = version_of(&bytes);
            (Bytes::from(bytes), version)
        }));
    }
    match root.store.get(&root.object_path(relative)).await {
        Ok(result) => {
            let version = result
                .meta
                .e_tag
                .clone()
                .ok_or_else(|| RepoError::Internal {
                    message: format!("the store gave {relative} no ETag"),
                })?;
            Ok(Some((result.bytes().await?, version)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Writes `bytes` at `relative` if the object is still at `expected` (`None`: still absent);
/// `false` when it is not.
pub(super) async fn write(
    root: &Root,
    relative: &str,
    bytes: Vec<u8>,
    expected: Option<String>,
) -> Result<bool, RepoError> {
    if let Location::Local(dir) = &root.location {
        let path = dir.join(relative);
        return blocking(move || {
            write_locked(&path, &bytes, expected.as_deref(), |bytes| {
                Some(version_of(bytes))
            })
        })
        .await;
    }
    let mode = match expected {
        None => PutMode::Create,
        Some(e_tag) => PutMode::Update(UpdateVersion {
            e_tag: Some(e_tag),
            version: None,
        }),
    };
    let path = root.object_path(relative);
    match root
        .store
        .put_opts(&path, bytes.into(), PutOptions::from(mode))
        .await
    {
        Ok(_) => Ok(true),
        // Gone since it was read: not at the expected version either.
        Err(
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotFound { .. },
        ) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// A version that changes whenever the bytes do (the same bytes again are the same state).
fn version_of(bytes: &[u8]) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("{:016x}-{}", hasher.finish(), bytes.len())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, RepoError> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| RepoError::Internal {
            message: err.to_string(),
        })??)
}

#[cfg(test)]
mod tests {
    use omnigraph_cloud_config::StorageRoot;

    use super::*;
    use crate::metrics::StoreMetrics;

    #[tokio::test]
    async fn a_replace_names_the_version_it_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(
            &StorageRoot::File(dir.path().into()),
            StoreMetrics::unregistered(),
        )
        .unwrap();
        let at = "_system/x/record.json";
        assert!(read(&root, at).await.unwrap().is_none());
        assert!(write(&root, at, b"one".to_vec(), None).await.unwrap());
        assert!(!write(&root, at, b"again".to_vec(), None).await.unwrap());
        let (bytes, first) = read(&root, at).await.unwrap().unwrap();
        assert_eq!(&bytes[..], b"one");
        assert!(
            write(&root, at, b"two".to_vec(), Some(first.clone()))
                .await
                .unwrap()
        );
        // The version read before the replace no longer matches.
        assert!(
            !write(&root, at, b"three".to_vec(), Some(first))
                .await
                .unwrap()
        );
        let (bytes, _) = read(&root, at).await.unwrap().unwrap();
        assert_eq!(&bytes[..], b"two");
    }
}
