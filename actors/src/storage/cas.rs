//! Conditional writes of soft state under the node's root: an object is read with a version,
//! and replaced only if it is still at that version. On S3 the version is the ETag and the
//! store checks it (`If-Match`, `If-None-Match`). A local root has no such write, so the
//! version is a hash of the bytes, checked and replaced under an exclusive `flock` on a
//! sibling `.lock` file, with an atomic rename: exclusive between the processes of one
//! machine, which is what a local root can be shared by.

use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions, UpdateVersion};

use super::roots::{Location, Root};
use crate::RepoError;

/// The object at `relative` with its version, or `None` if absent.
pub(super) async fn read(
    root: &Root,
    relative: &str,
) -> Result<Option<(Bytes, String)>, RepoError> {
    if let Location::Local(dir) = &root.location {
        let path = dir.join(relative);
        return blocking(move || {
            let _lock = lock(&path)?;
            match fs::read(&path) {
                Ok(bytes) => {
                    let version = version_of(&bytes);
                    Ok(Some((Bytes::from(bytes), version)))
                }
                Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
                Err(err) => Err(err),
            }
        })
        .await;
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
        return blocking(move || write_local(&path, &bytes, expected.as_deref())).await;
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
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

fn write_local(path: &Path, bytes: &[u8], expected: Option<&str>) -> std::io::Result<bool> {
    let _lock = lock(path)?;
    let current = match fs::read(path) {
        Ok(current) => Some(version_of(&current)),
        Err(err) if err.kind() == ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    if current.as_deref() != expected {
        return Ok(false);
    }
    let staging = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = File::create(&staging)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&staging, path)?;
    Ok(true)
}

fn lock(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(path))?;
    lock.lock()?;
    Ok(lock)
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
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
