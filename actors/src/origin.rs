//! Whether the request being served was forwarded here by another node of the cluster (its
//! signed header verified at the edge). Such a request is never sent on, so this node makes
//! the write itself when the graph's writer lease is free, whatever its own view of
//! placement says: two nodes whose gossip views differ for a moment would otherwise bounce
//! the write between them.

use std::future::Future;

tokio::task_local! {
    static FORWARDED: ();
}

/// Runs `request`, a request forwarded here by another node.
pub async fn forwarded<F: Future>(request: F) -> F::Output {
    FORWARDED.scope((), request).await
}

/// Whether the current task serves a forwarded request.
pub(crate) fn is_forwarded() -> bool {
    FORWARDED.try_with(|_| ()).is_ok()
}
