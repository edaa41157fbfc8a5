//! The fault rules ([`Faults`] and its parts, as set through `/__proxy/faults`), whether a rule
//! matches a request, and what an error rule answers.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

/// The kind of S3 operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Get,
    Put,
    List,
    Head,
    Delete,
    /// Multipart upload steps and batch deletes.
    Post,
}

/// The faults in force. Every field defaults to "no fault".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added latency per operation.
    pub latency: BTreeMap<Op, Latency>,
    /// Error answers; the first rule that matches and fires wins.
    pub errors: Vec<ErrorRule>,
    /// Fraction of requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// Every request's connection is dropped: the store is unreachable.
    pub partition: bool,
    /// Removes `If-Match` and `If-None-Match` before forwarding.
    pub strip_conditional_headers: bool,
    /// Requests held back until the rule is removed (a later `PUT /__proxy/faults` without
    /// it), then forwarded, whether or not their client still waits for the answer.
    pub holds: Vec<HoldRule>,
}

/// Holds matching requests. A held request is forwarded once no rule in force holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRule {
    /// Operations it applies to; empty means all.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// Applies only to keys containing this text.
    #[serde(default)]
    pub key_contains: Option<String>,
    /// Holds at most this many requests (counted over the rule's life); later matching
    /// requests pass. Unset: every matching request is held.
    #[serde(default)]
    pub max_held: Option<u64>,
}

/// Latency drawn uniformly from `p50_ms ± jitter_ms` (so its median is `p50_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub p50_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
}

/// Answers an S3 error instead of forwarding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// Operations it applies to; empty means all.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// Applies only to keys containing this text.
    #[serde(default)]
    pub key_contains: Option<String>,
    /// Probability of firing for a matching request, 0.0 to 1.0.
    pub rate: f64,
    /// HTTP status: 500 (`InternalError`), 503 (`ServiceUnavailable`) or 503 with
    /// `code = "SlowDown"`.
    pub status: u16,
    #[serde(default)]
    pub code: Option<String>,
}

/// Whether a hold rule applies to this request (its `max_held` is counted by the caller).
pub(super) fn holds(rule: &HoldRule, op: Op, key: &str) -> bool {
    (rule.ops.is_empty() || rule.ops.contains(&op))
        && rule
            .key_contains
            .as_deref()
            .is_none_or(|needle| key.contains(needle))
}

pub(super) fn fires(rule: &ErrorRule, op: Op, key: &str) -> bool {
    (rule.ops.is_empty() || rule.ops.contains(&op))
        && rule
            .key_contains
            .as_deref()
            .is_none_or(|needle| key.contains(needle))
        && fastrand::f64() < rule.rate
}

pub(super) fn draw(latency: &Latency) -> Duration {
    let low = latency.p50_ms.saturating_sub(latency.jitter_ms);
    let high = latency.p50_ms + latency.jitter_ms;
    Duration::from_millis(fastrand::u64(low..=high))
}

pub(super) fn s3_error(rule: &ErrorRule) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let code = rule.code.clone().unwrap_or_else(|| match rule.status {
        500 => "InternalError".into(),
        _ => "ServiceUnavailable".into(),
    });
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
         <Message>injected by og-s3-proxy</Message></Error>"
    );
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_stays_within_its_band() {
        let latency = Latency {
            p50_ms: 100,
            jitter_ms: 20,
        };
        for _ in 0..1000 {
            let drawn = draw(&latency).as_millis();
            assert!((80..=120).contains(&drawn), "{drawn}");
        }
    }
}
