//! The lease backend on a local root (`file://`). `object_store` has no conditional update on
//! a local filesystem, so every read and write happens under an exclusive `flock` on a sibling
//! `.lock` file, the record's nonce serves as its version, and a write is an atomic rename:
//! exclusive between the processes of one machine, which is what a local root can be shared by.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;

use super::LeaseError;
use super::backend::{CasOutcome, LeaseBackend, Stored, storage_error};
use super::codec::decode_nonce;

pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: PathBuf) -> LocalBackend {
        LocalBackend { root }
    }
}

#[async_trait]
impl LeaseBackend for LocalBackend {
    async fn read(&self, path: &str) -> Result<Option<Stored>, LeaseError> {
        let path = self.root.join(path);
        let found = tokio::task::spawn_blocking(move || read_locked(&path))
            .await
            .map_err(storage_error)?
            .map_err(storage_error)?;
        Ok(found.map(|bytes| Stored {
            version: decode_nonce(&bytes).unwrap_or_default(),
            bytes,
        }))
    }

    async fn write(
        &self,
        path: &str,
        bytes: Vec<u8>,
        expected: Option<String>,
    ) -> Result<CasOutcome, LeaseError> {
        let path = self.root.join(path);
        let version = decode_nonce(&bytes).unwrap_or_default();
        let written = tokio::task::spawn_blocking(move || {
            write_locked(&path, &bytes, expected.as_deref(), decode_nonce)
        })
        .await
        .map_err(storage_error)?
        .map_err(storage_error)?;
        Ok(if written {
            CasOutcome::Written(version)
        } else {
            CasOutcome::Conflict
        })
    }

    async fn list(&self, dir: &str) -> Result<Vec<(String, String)>, LeaseError> {
        let (root, dir) = (self.root.clone(), dir.to_string());
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            list_json(&root, &root.join(&dir), &mut found)?;
            Ok::<_, std::io::Error>(found)
        })
        .await
        .map_err(storage_error)?
        .map_err(storage_error)
    }
}

fn lock_file(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))?;
    lock.lock()?;
    Ok(lock)
}

/// The bytes at `path`, read under its lock; `None` if absent.
pub fn read_locked(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    if !path.exists() {
        return Ok(None);
    }
    let _lock = lock_file(path)?;
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Writes `bytes` at `path` if the current file's version is `expected` (`None`: if
/// absent), under the file's lock, by an atomic rename; whether it wrote. `version` reads a
/// version from a file's bytes (`None`: it has none, and matches no expected version).
pub fn write_locked(
    path: &Path,
    bytes: &[u8],
    expected: Option<&str>,
    version: impl Fn(&[u8]) -> Option<String>,
) -> std::io::Result<bool> {
    let _lock = lock_file(path)?;
    let current = match fs::read(path) {
        Ok(current) => Some(version(&current)),
        Err(err) if err.kind() == ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    let matches = match (expected, current) {
        (None, None) => true,
        (Some(expected), Some(Some(current))) => expected == current,
        _ => false,
    };
    if !matches {
        return Ok(false);
    }
    let staging = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = File::create(&staging)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&staging, path)?;
    Ok(true)
}

/// Every `.json` file under `dir`, as (path relative to `root`, modification time).
fn list_json(root: &Path, dir: &Path, found: &mut Vec<(String, String)>) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_json(root, &path, found)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            let modified = entry
                .metadata()?
                .modified()?
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let relative = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            found.push((
                relative,
                format!("{}.{:09}", modified.as_secs(), modified.subsec_nanos()),
            ));
        }
    }
    Ok(())
}
