//! The deadline of a read: the tenant's `limits.query_timeout`, or less when the request asks
//! with `x-omnigraph-timeout-ms`. Past it the read's future is dropped, which cancels the
//! engine work at its next await (and the DataFusion tasks it spawned with it), not just the
//! wait; the answer is a 504 naming the deadline. A streamed export is bounded as a whole: past
//! its deadline the stream ends with an error, so a truncated export is never taken for a
//! whole one.

use std::future::Future;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use tokio::time::Instant;

use crate::error::ApiError;

/// A request that wants a shorter deadline than its tenant's sends this header, in
/// milliseconds.
pub(crate) const TIMEOUT_HEADER: &str = "x-omnigraph-timeout-ms";

/// A read's deadline and where it came from, for the answer past it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    after: Duration,
    asked: bool,
}

impl Deadline {
    /// The deadline of `request` under the tenant's `limit`: the shorter of the two. A header
    /// that is not a positive whole number of milliseconds is a 400.
    pub(crate) fn of(request: &Request, limit: Duration) -> Result<Deadline, ApiError> {
        let Some(value) = request.headers().get(TIMEOUT_HEADER) else {
            return Ok(Deadline {
                after: limit,
                asked: false,
            });
        };
        let millis = value
            .to_str()
            .ok()
            .and_then(|value| value.trim().parse::<u64>().ok())
            .filter(|millis| *millis > 0)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "header {TIMEOUT_HEADER} takes a positive whole number of milliseconds"
                ))
            })?;
        let asked = Duration::from_millis(millis);
        Ok(Deadline {
            after: asked.min(limit),
            asked: asked < limit,
        })
    }

    fn exceeded(&self) -> ApiError {
        let source = if self.asked {
            TIMEOUT_HEADER
        } else {
            "limits.query_timeout"
        };
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
            format!(
                "the read did not finish within its deadline of {} ms ({source}) and was cancelled",
                self.after.as_millis()
            ),
        )
    }

    /// Runs `work` (the rest of the request) within the deadline. `Err` when it passed before
    /// the answer's head; the answer's body is bounded by what is left of it.
    ///
    /// The work runs as a task of its own, aborted when the deadline passes (or the request
    /// is dropped): the answer does not wait for engine code that computes for a while
    /// between two awaits, and the task stops at its next one.
    pub(crate) async fn run(
        self,
        work: impl Future<Output = Response> + Send + 'static,
    ) -> Result<Response, ApiError> {
        let at = Instant::now() + self.after;
        let mut task = AbortOnDrop(tokio::spawn(work));
        match tokio::time::timeout_at(at, &mut task.0).await {
            // An answer already in memory has nothing left to wait for.
            Ok(Ok(response)) if response.body().size_hint().exact().is_some() => Ok(response),
            Ok(Ok(response)) => Ok(response.map(|body| bounded(body, at))),
            // A panic is the handler's: raised again here, where the panic layer answers it.
            Ok(Err(err)) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Ok(Err(_)) | Err(_) => Err(self.exceeded()),
        }
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<Response>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `body`, ended with an error at `at` if it has not ended by then.
fn bounded(body: Body, at: Instant) -> Body {
    let sleep = Box::pin(tokio::time::sleep_until(at));
    let stream =
        futures::stream::unfold(Some((body.into_data_stream(), sleep)), |state| async move {
            let (mut stream, mut sleep) = state?;
            tokio::select! {
                chunk = stream.next() => chunk.map(|chunk| (chunk, Some((stream, sleep)))),
                () = &mut sleep => {
                    let err = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the answer did not finish within the read's deadline",
                    );
                    Some((Err(axum::Error::new(err)), None))
                }
            }
        });
    Body::from_stream(stream)
}
