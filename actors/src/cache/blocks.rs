//! Immutable objects, read block by block through the node's cache.
//!
//! Lance never rewrites a data file, index file, deletion file or transaction file: each has
//! a name of its own (a UUID, or a version plus a random part). Versioned manifests
//! (`_versions/{n}.manifest`) are written once with `If-None-Match`, but a graph deleted and
//! created again reuses their names, so they are cached under their ETag as well, as learnt
//! from the listing that found them; without a known ETag they are read from the store.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta, ObjectStore};

use super::BLOCK_SIZE;
use super::repo::RepoCache;

/// What kind of object a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Never changes once written.
    Immutable,
    /// `_versions/{n}.manifest`: immutable per ETag.
    VersionedManifest,
    /// Anything else: may change.
    Mutable,
}

pub(crate) fn classify(path: &Path) -> Class {
    let path = path.as_ref();
    let mut parts = path.rsplit('/');
    let file = parts.next().unwrap_or_default();
    let dir = parts.next().unwrap_or_default();
    let numbered = |suffix: &str| {
        file.strip_suffix(suffix)
            .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
    };
    match dir {
        "_versions" if numbered(".manifest") => Class::VersionedManifest,
        "_deletions" | "_transactions" => Class::Immutable,
        "data" if file.ends_with(".lance") => Class::Immutable,
        _ if path.contains("/_indices/") || path.starts_with("_indices/") => Class::Immutable,
        _ => Class::Mutable,
    }
}

/// Whether a read can be answered from cached blocks at all: a plain read (no conditions, no
/// version), of an object whose content its name (and ETag) fixes.
pub(crate) fn cacheable(options: &GetOptions) -> bool {
    options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none()
}

/// The key prefix of an immutable object's entries, or `None` when it cannot be cached (a
/// versioned manifest whose ETag is not known).
pub(crate) fn key_prefix(repo: &RepoCache, path: &Path, class: Class) -> Option<String> {
    match class {
        Class::Immutable => Some(path.to_string()),
        Class::VersionedManifest => repo
            .etag(path.as_ref())
            .map(|etag| format!("{path}@{etag}")),
        Class::Mutable => None,
    }
}

/// Reads `location` through the cache. `None` when the read should go to the store as asked
/// (a range the cache cannot resolve, such as a suffix of an object of unknown size).
pub(crate) async fn read(
    repo: &RepoCache,
    inner: &dyn ObjectStore,
    location: &Path,
    prefix: &str,
    options: &GetOptions,
) -> Option<object_store::Result<GetResult>> {
    let node = &repo.node;
    let meta_key = format!("{prefix}#meta");
    let meta = match node.get(&meta_key).await {
        Some(bytes) => decode_meta(location, &bytes),
        None => None,
    };
    if options.head {
        let meta = meta?;
        return Some(Ok(result(meta, 0..0, Bytes::new())));
    }
    let wanted = match (&options.range, &meta) {
        (None, Some(meta)) => 0..meta.size,
        (Some(range), Some(meta)) => range.as_range(meta.size).ok()?,
        (Some(GetRange::Bounded(range)), None) => range.clone(),
        // A whole object, a suffix or an offset of an object of unknown size: read as asked,
        // and keep what it brings.
        _ => return Some(read_as_asked(repo, inner, location, prefix, options).await),
    };
    if wanted.is_empty() {
        return None;
    }
    let first = wanted.start / BLOCK_SIZE;
    let last = (wanted.end - 1) / BLOCK_SIZE;
    let keys: Vec<String> = (first..=last).map(|b| format!("{prefix}#{b}")).collect();
    let mut blocks: Vec<Option<Bytes>> = join_all(keys.iter().map(|k| node.get(k))).await;
    let mut meta = meta;
    if let (Some(lo), Some(hi)) = (
        blocks.iter().position(Option::is_none),
        blocks.iter().rposition(Option::is_none),
    ) {
        // One request for the span of missing blocks, however they interleave with hits.
        let span = (first + lo as u64) * BLOCK_SIZE..(first + hi as u64 + 1) * BLOCK_SIZE;
        let fetched = match fetch(repo, inner, location, span.clone()).await {
            Ok(fetched) => fetched,
            Err(err) => return Some(Err(err)),
        };
        let (bytes, fetched_meta) = fetched;
        if meta.is_none() {
            node.insert(meta_key, encode_meta(&fetched_meta));
        }
        let size = fetched_meta.size;
        meta = Some(fetched_meta);
        for (i, chunk) in chunks(&bytes, span.start).into_iter().enumerate() {
            let slot = lo + i;
            if slot >= blocks.len() {
                break;
            }
            let block_start = (first + slot as u64) * BLOCK_SIZE;
            if chunk.len() as u64 == BLOCK_SIZE || block_start + chunk.len() as u64 == size {
                node.insert(keys[slot].clone(), chunk.clone());
            }
            blocks[slot] = Some(chunk);
        }
    }
    let meta = meta?;
    if wanted.start >= meta.size {
        return None; // the store answers with the error a read past the end deserves
    }
    let wanted = wanted.start..wanted.end.min(meta.size);
    let mut joined = BytesMut::with_capacity((wanted.end - wanted.start) as usize);
    for (slot, block) in blocks.into_iter().enumerate() {
        let block_start = (first + slot as u64) * BLOCK_SIZE;
        let expected = BLOCK_SIZE.min(meta.size.saturating_sub(block_start));
        let block = block?;
        if block.len() as u64 != expected {
            // A damaged entry: never an answer. The store has the truth.
            node.metrics().error();
            return None;
        }
        joined.extend_from_slice(&block);
    }
    let offset = (wanted.start - first * BLOCK_SIZE) as usize;
    let bytes = joined
        .freeze()
        .slice(offset..offset + (wanted.end - wanted.start) as usize);
    Some(Ok(result(meta, wanted, bytes)))
}

/// Keeps an immutable object just written, whole: its metadata and every block.
pub(crate) fn write_through(repo: &RepoCache, class: Class, meta: &ObjectMeta, bytes: Bytes) {
    let prefix = match (class, &meta.e_tag) {
        (Class::Immutable, _) => meta.location.to_string(),
        (Class::VersionedManifest, Some(etag)) => format!("{}@{etag}", meta.location),
        _ => return,
    };
    if bytes.len() as u64 != meta.size {
        return;
    }
    remember_meta(repo, &prefix, meta);
    for (block, chunk) in chunks(&bytes, 0).into_iter().enumerate() {
        repo.node.insert(format!("{prefix}#{block}"), chunk);
    }
}

/// Keeps an immutable object's metadata, as a HEAD found it.
pub(crate) fn remember_meta(repo: &RepoCache, prefix: &str, meta: &ObjectMeta) {
    repo.node
        .insert(format!("{prefix}#meta"), encode_meta(meta));
}

/// A read sent to the store as asked, counted as a miss; its size and its whole blocks are
/// kept.
async fn read_as_asked(
    repo: &RepoCache,
    inner: &dyn ObjectStore,
    location: &Path,
    prefix: &str,
    options: &GetOptions,
) -> object_store::Result<GetResult> {
    repo.node.metrics().miss("block");
    repo.node.metrics().request("get", &repo.key);
    let got = inner.get_opts(location, options.clone()).await?;
    let (meta, range) = (got.meta.clone(), got.range.clone());
    let bytes = got.bytes().await?;
    repo.node.metrics().miss_bytes(bytes.len() as u64);
    repo.node.metrics().read(&repo.key, bytes.len() as u64);
    remember_meta(repo, prefix, &meta);
    // The blocks wholly inside the range (the last one may end at the end of the object).
    let first = range.start.div_ceil(BLOCK_SIZE);
    let mut block = first;
    while block * BLOCK_SIZE < range.end {
        let start = block * BLOCK_SIZE;
        let end = (start + BLOCK_SIZE).min(meta.size);
        if end > range.end {
            break;
        }
        let at = (start - range.start) as usize;
        let chunk = bytes.slice(at..at + (end - start) as usize);
        repo.node.insert(format!("{prefix}#{block}"), chunk);
        block += 1;
    }
    Ok(result(meta, range, bytes))
}

/// One ranged GET of the store, counted as a miss.
async fn fetch(
    repo: &RepoCache,
    inner: &dyn ObjectStore,
    location: &Path,
    span: Range<u64>,
) -> object_store::Result<(Bytes, ObjectMeta)> {
    repo.node.metrics().miss("block");
    repo.node.metrics().request("get", &repo.key);
    let options = GetOptions {
        range: Some(GetRange::Bounded(span)),
        ..GetOptions::default()
    };
    let got = inner.get_opts(location, options).await?;
    let meta = got.meta.clone();
    let bytes = got.bytes().await?;
    repo.node.metrics().miss_bytes(bytes.len() as u64);
    repo.node.metrics().read(&repo.key, bytes.len() as u64);
    Ok((bytes, meta))
}

/// `bytes`, read from `start` (block-aligned), cut into blocks.
fn chunks(bytes: &Bytes, start: u64) -> Vec<Bytes> {
    debug_assert_eq!(start % BLOCK_SIZE, 0);
    (0..bytes.len())
        .step_by(BLOCK_SIZE as usize)
        .map(|at| bytes.slice(at..(at + BLOCK_SIZE as usize).min(bytes.len())))
        .collect()
}

pub(crate) fn result(meta: ObjectMeta, range: Range<u64>, bytes: Bytes) -> GetResult {
    GetResult {
        payload: GetResultPayload::Stream(Box::pin(futures::stream::once(async { Ok(bytes) }))),
        meta,
        range,
        attributes: Default::default(),
    }
}

/// `size`, `last_modified` (ms), `e_tag` and `version`, one per line.
fn encode_meta(meta: &ObjectMeta) -> Bytes {
    Bytes::from(format!(
        "{}\n{}\n{}\n{}",
        meta.size,
        meta.last_modified.timestamp_millis(),
        meta.e_tag.as_deref().unwrap_or_default(),
        meta.version.as_deref().unwrap_or_default(),
    ))
}

fn decode_meta(location: &Path, bytes: &[u8]) -> Option<ObjectMeta> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split('\n');
    let size = lines.next()?.parse().ok()?;
    let last_modified = DateTime::<Utc>::from_timestamp_millis(lines.next()?.parse().ok()?)?;
    let optional = |line: Option<&str>| line.filter(|s| !s.is_empty()).map(str::to_string);
    let e_tag = optional(lines.next());
    let version = optional(lines.next());
    Some(ObjectMeta {
        location: location.clone(),
        last_modified,
        size,
        e_tag,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_fixed_by_their_name_are_immutable() {
        let class = |p: &str| classify(&Path::from(p));
        let g = "t/acme/graphs/g.omni/nodes/0f";
        assert_eq!(class(&format!("{g}/data/3f2a-11.lance")), Class::Immutable);
        assert_eq!(
            class(&format!("{g}/_indices/9c1d/index.idx")),
            Class::Immutable
        );
        assert_eq!(
            class(&format!("{g}/_deletions/3-7-99.arrow")),
            Class::Immutable
        );
        assert_eq!(
            class(&format!("{g}/_transactions/7-ab.txn")),
            Class::Immutable
        );
        assert_eq!(
            class(&format!("{g}/_versions/18446744073709551608.manifest")),
            Class::VersionedManifest
        );
        for mutable in [
            "_versions/_latest.manifest",
            "_versions/x1.manifest",
            "_refs/branches/feature.json",
            "_schema.pg",
            "data/notes.txt",
            "__recovery/abc.json",
        ] {
            assert_eq!(
                class(&format!("{g}/{mutable}")),
                Class::Mutable,
                "{mutable}"
            );
        }
    }

    #[test]
    fn metadata_survives_its_encoding() {
        let meta = ObjectMeta {
            location: Path::from("a/b"),
            last_modified: DateTime::<Utc>::from_timestamp_millis(1_700_000_000_123).unwrap(),
            size: 70_001,
            e_tag: Some("\"abc\"".into()),
            version: None,
        };
        let decoded = decode_meta(&meta.location, &encode_meta(&meta)).unwrap();
        assert_eq!(decoded, meta);
        assert!(decode_meta(&meta.location, b"garbage").is_none());
    }

    #[test]
    fn a_span_is_cut_at_block_boundaries() {
        let bytes = Bytes::from(vec![7u8; (BLOCK_SIZE * 2 + 5) as usize]);
        let lengths: Vec<usize> = chunks(&bytes, 0).iter().map(Bytes::len).collect();
        assert_eq!(lengths, vec![BLOCK_SIZE as usize, BLOCK_SIZE as usize, 5]);
    }
}
