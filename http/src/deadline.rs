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
    pub(crate) async fn run(
        self,
        work: impl Future<Output = Response>,
    ) -> Result<Response, ApiError> {
        let at = Instant::now() + self.after;
        match tokio::time::timeout_at(at, work).await {
            // An answer already in memory has nothing left to wait for.
            Ok(response) if response.body().size_hint().exact().is_some() => Ok(response),
            Ok(response) => Ok(response.map(|body| bounded(body, at))),
            Err(_) => Err(self.exceeded()),
        }
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
