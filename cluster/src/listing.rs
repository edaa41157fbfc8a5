//! Listing a prefix of an object store, shared by the lease store and the node's storage.

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore};

/// Every object under `prefix`, with its path relative to the prefix (`a/b.json`). A prefix
/// that does not exist lists as empty.
pub async fn list_under(
    store: &dyn ObjectStore,
    prefix: &ObjectPath,
) -> object_store::Result<Vec<(String, ObjectMeta)>> {
    let skip = prefix.parts().count();
    let listed: Vec<ObjectMeta> = match store.list(Some(prefix)).try_collect().await {
        Ok(listed) => listed,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(err) => return Err(err),
    };
    Ok(listed
        .into_iter()
        .map(|meta| {
            let relative = meta
                .location
                .parts()
                .skip(skip)
                .map(|part| part.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/");
            (relative, meta)
        })
        .collect())
}

/// A version of a listed object that changes whenever it is written.
pub fn listing_version(meta: &ObjectMeta) -> String {
    meta.e_tag
        .clone()
        .unwrap_or_else(|| meta.last_modified.to_rfc3339())
}
