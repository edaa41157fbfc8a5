//! A fault-injecting S3 proxy.
//!
//! It listens on loopback and forwards every request unchanged — method, path, query, headers
//! (the `Host` header included, so SigV4 signatures still verify) and body — to a real S3
//! server, and on the way it can add per-operation latency with jitter, answer S3 errors
//! (500, 503, `SlowDown`) at a rate or for a key pattern, drop connections, partition the
//! store entirely, and strip conditional-write headers (to impersonate a store that ignores
//! them), and hold requests (a network that delays a request, then delivers it). Faults are
//! switched at run time through `/__proxy/faults`; request counts per operation and per
//! tenant/graph are at `/__proxy/stats`.
//!
//! Layout (imports between these files point down this list, never up):
//! - `mod.rs`: [`FaultProxy`], the listener and its accept loop (start and stop).
//! - `handle`: one request's way through the proxy: counting, faults, holds, forwarding.
//! - `control`: the `/__proxy/...` control routes.
//! - `forward`: sending a request to the upstream S3 server and relaying its answer.
//! - `state`: the state the connections share (faults in force, counters, held requests).
//! - `stats`: the request counters ([`Stats`]) and attributing keys to graphs.
//! - `request`: what an S3 request is: its operation and its object key.
//! - `faults`: the fault rules ([`Faults`] and its parts), their matching and their answers.

mod control;
mod faults;
mod forward;
mod handle;
mod request;
mod state;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{ErrorRule, Faults, HoldRule, Latency, Op};
pub use stats::Stats;

use handle::handle;
use state::Shared;

/// A running proxy; dropping it stops accepting connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `listen` (use port 0 for any) and forwards to `upstream` (`http://host:port`).
    pub async fn start(listen: SocketAddr, upstream: &str) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared::new(upstream, client));
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, to use as the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().expect("stats lock").clone()
    }

    pub fn reset_stats(&self) {
        *self.shared.stats.lock().expect("stats lock") = Stats::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { handle(&shared, request).await }
            });
            // An error here is a dropped connection, injected or not: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
