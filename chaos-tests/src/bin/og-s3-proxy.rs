//! `og-s3-proxy`: a fault-injecting S3 proxy for tests, benchmarks and manual chaos.
//!
//! ```sh
//! og-s3-proxy --listen 127.0.0.1:9100 --upstream http://127.0.0.1:9000
//! export AWS_ENDPOINT_URL_S3=http://127.0.0.1:9100   # point the node at the proxy
//! curl -X PUT 127.0.0.1:9100/__proxy/faults -d '{"latency":{"put":{"p50_ms":100,"jitter_ms":30}}}'
//! curl 127.0.0.1:9100/__proxy/stats
//! ```

use std::net::SocketAddr;

use clap::Parser;
use omnigraph_cloud_chaos::{FaultProxy, Faults};

#[derive(Parser)]
#[command(
    name = "og-s3-proxy",
    about = "Fault-injecting S3 proxy (loopback only)"
)]
struct Args {
    /// Address to listen on; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// The real S3 endpoint, e.g. http://127.0.0.1:9000.
    #[arg(long)]
    upstream: String,
    /// Initial faults as JSON (same form as PUT /__proxy/faults).
    #[arg(long)]
    faults: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        return Err(format!("--listen must be a loopback address, got {}", args.listen).into());
    }
    let proxy = FaultProxy::start(args.listen, &args.upstream).await?;
    if let Some(faults) = args.faults {
        proxy.set_faults(serde_json::from_str::<Faults>(&faults)?);
    }
    tracing::info!(listen = %proxy.addr(), upstream = %args.upstream, "og-s3-proxy forwarding");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
