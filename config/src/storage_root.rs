//! The storage root every graph of every tenant lives under.

use std::path::{Component, Path, PathBuf};

use crate::ConfigError;

/// Where a node keeps its graphs: `{root}/tenants/{tenant}/graphs/{graph_id}.omni`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageRoot {
    /// A local directory, made absolute at parse time (`file://./x` is relative to the
    /// working directory of the process).
    File(PathBuf),
    /// An S3 bucket and key prefix (no leading or trailing `/`), configured from `AWS_*`.
    S3 { bucket: String, prefix: String },
    /// An ephemeral root for tests and experiments, gone when the process exits.
    Memory,
}

const EXPECTED: &str =
    "file:///abs/path, file://./relative/path, s3://bucket[/prefix] or memory://";

impl StorageRoot {
    pub fn parse(value: &str) -> Result<StorageRoot, ConfigError> {
        let invalid = || ConfigError::invalid("storage.root", value, EXPECTED);
        if let Some(rest) = value.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(invalid());
            }
            let path = Path::new(rest);
            let absolute = if path.is_absolute() {
                path.to_path_buf()
            } else {
                std::env::current_dir().map_err(|_| invalid())?.join(path)
            };
            return Ok(StorageRoot::File(normalize(&absolute)));
        }
        if let Some(rest) = value.strip_prefix("s3://") {
            let rest = rest.trim_matches('/');
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !bucket_ok {
                return Err(invalid());
            }
            return Ok(StorageRoot::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if value == "memory://" || value == "memory:///" {
            return Ok(StorageRoot::Memory);
        }
        Err(invalid())
    }

    /// The root as a URI, for logs and diagnostics.
    pub fn display_uri(&self) -> String {
        match self {
            StorageRoot::File(path) => format!("file://{}", path.display()),
            StorageRoot::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            StorageRoot::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            StorageRoot::Memory => "memory://".into(),
        }
    }
}

/// Removes `.` and resolves `..` lexically, so that the same directory has one spelling.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        assert_eq!(
            StorageRoot::parse("file:///data/og/").unwrap(),
            StorageRoot::File("/data/og".into())
        );
        let relative = StorageRoot::parse("file://./x/../data").unwrap();
        assert_eq!(
            relative,
            StorageRoot::File(std::env::current_dir().unwrap().join("data"))
        );
        assert_eq!(
            StorageRoot::parse("s3://bucket/a/b/").unwrap(),
            StorageRoot::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            StorageRoot::parse("s3://bucket").unwrap(),
            StorageRoot::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            StorageRoot::parse("memory://").unwrap(),
            StorageRoot::Memory
        );
        for bad in [
            "",
            "/plain/path",
            "file://",
            "s3://",
            "s3://UPPER",
            "http://x",
            "memory://x",
        ] {
            assert!(StorageRoot::parse(bad).is_err(), "{bad}");
        }
    }
}
