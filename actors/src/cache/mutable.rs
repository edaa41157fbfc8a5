//! What the cache keeps of an object that can change: the answer of one store request.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ListResult, ObjectMeta};

/// A cached answer about an object that can change.
#[derive(Clone)]
pub(crate) enum Mutable {
    List(Arc<Vec<ObjectMeta>>),
    Delimited(Arc<(Vec<object_store::path::Path>, Vec<ObjectMeta>)>),
    /// `None`: the object does not exist.
    Head(Option<ObjectMeta>),
    Object(Bytes, ObjectMeta),
    Text(String),
    Versioned((String, String)),
    Exists(bool),
    Dir(Vec<String>),
}

/// `ListResult` is not `Clone`; the delimited listing is kept as its parts.
pub(crate) fn split_listing(listing: &ListResult) -> Mutable {
    Mutable::Delimited(Arc::new((
        listing.common_prefixes.clone(),
        listing.objects.clone(),
    )))
}
