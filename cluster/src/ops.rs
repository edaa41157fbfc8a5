//! The object-store requests this crate issues itself, counted by whoever embeds it (the node
//! exports them as metrics by tenant and graph).

use crate::RepoKey;

/// A kind of object-store request.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum StoreOp {
    Get,
    Put,
    List,
    Head,
    Delete,
}

impl StoreOp {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Get => "Get",
            StoreOp::Put => "Put",
            StoreOp::List => "List",
            StoreOp::Head => "Head",
            StoreOp::Delete => "Delete",
        }
    }
}

/// Counts requests; `key` is the repo a request is for, `None` for root-wide ones (listings).
pub trait OpCounter: Send + Sync + 'static {
    fn count(&self, op: StoreOp, key: Option<&RepoKey>);
}

/// Counts nothing.
impl OpCounter for () {
    fn count(&self, _op: StoreOp, _key: Option<&RepoKey>) {}
}
