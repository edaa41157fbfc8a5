//! Where a request's reads and writes landed: the `__manifest` version of the branch read or
//! published, and the writer-lease epoch a write was published under. The edge puts them in
//! every answer, so that clients (and the chaos checker) can order what they saw.
//!
//! A request collects its stamp through [`collect`], a task-local scope around the request's
//! future: the repo handle records into it as reads and writes complete, in the caller's own
//! task, without any signature above the handle having to carry it.

use std::cell::Cell;
use std::future::Future;

/// Where a read or a write landed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// The branch's `__manifest` version read, or reached by the write's publish.
    pub manifest_version: Option<u64>,
    /// The writer-lease epoch the write was published under; `None` for reads.
    pub lease_epoch: Option<u64>,
}

tokio::task_local! {
    static CURRENT: Cell<Stamp>;
}

/// Runs `request` and returns, with its output, the stamp of the last read or write it made
/// (default when it made none).
pub async fn collect<F: Future>(request: F) -> (F::Output, Stamp) {
    CURRENT
        .scope(Cell::new(Stamp::default()), async move {
            let output = request.await;
            (output, CURRENT.with(Cell::get))
        })
        .await
}

/// Records `stamp` as the request's; nothing outside [`collect`].
pub(crate) fn record(stamp: Stamp) {
    let _ = CURRENT.try_with(|current| current.set(stamp));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_record_inside_the_scope_is_collected() {
        record(Stamp {
            manifest_version: Some(1),
            lease_epoch: None,
        }); // outside any scope: dropped
        let ((), stamp) = collect(async {
            record(Stamp {
                manifest_version: Some(3),
                lease_epoch: Some(2),
            });
            tokio::task::yield_now().await;
            record(Stamp {
                manifest_version: Some(4),
                lease_epoch: Some(2),
            });
        })
        .await;
        assert_eq!(stamp.manifest_version, Some(4));
        assert_eq!(stamp.lease_epoch, Some(2));
        let ((), none) = collect(async {}).await;
        assert_eq!(none, Stamp::default());
    }
}
