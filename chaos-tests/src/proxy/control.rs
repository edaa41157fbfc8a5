//! The control routes under `/__proxy/`: read and replace the faults, read and reset the
//! request counters.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};

use super::faults::Faults;
use super::state::Shared;
use super::stats::Stats;

pub(super) async fn control(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let json = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("static response")
    };
    match (method, path.as_str()) {
        (Method::GET, "/__proxy/faults") => {
            let faults = shared.faults.read().expect("faults lock").clone();
            json(
                StatusCode::OK,
                serde_json::to_string(&faults).expect("faults serialize"),
            )
        }
        (Method::PUT, "/__proxy/faults") => {
            let Ok(body) = request.into_body().collect().await else {
                return json(
                    StatusCode::BAD_REQUEST,
                    "{\"error\":\"unreadable body\"}".into(),
                );
            };
            match serde_json::from_slice::<Faults>(&body.to_bytes()) {
                Ok(faults) => {
                    shared.set_faults(faults.clone());
                    json(
                        StatusCode::OK,
                        serde_json::to_string(&faults).expect("faults serialize"),
                    )
                }
                Err(err) => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": err.to_string()}).to_string(),
                ),
            }
        }
        (Method::GET, "/__proxy/stats") => {
            let stats = shared.stats.lock().expect("stats lock").clone();
            json(
                StatusCode::OK,
                serde_json::to_string(&stats).expect("stats serialize"),
            )
        }
        (Method::POST, "/__proxy/stats/reset") => {
            *shared.stats.lock().expect("stats lock") = Stats::default();
            json(StatusCode::OK, "{}".into())
        }
        _ => json(
            StatusCode::NOT_FOUND,
            "{\"error\":\"unknown control route\"}".into(),
        ),
    }
}
