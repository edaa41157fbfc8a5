//! `omnigraph-cloud usage`: the usage records under a root, folded into totals per tenant and
//! graph, or second by second (docs/control-plane.md#usage-records).

use std::process::ExitCode;

use clap::Args;
use omnigraph_cloud_actors::usage::{UsageQuery, fold, fold::series, read_records_for};
use serde_json::json;

#[derive(Args)]
pub(crate) struct UsageArgs {
    /// The node's configuration file (for the storage root).
    #[arg(long, env = "OMNIGRAPH_CLOUD_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// First second counted: RFC 3339 (`2026-11-28T10:00:00Z`) or Unix seconds.
    #[arg(long)]
    from: Option<String>,
    /// First second not counted.
    #[arg(long)]
    to: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this graph (of `--tenant`).
    #[arg(long, requires = "tenant")]
    graph: Option<String>,
    /// `json` (totals, one object per tenant and graph), `csv` (the same as rows), or
    /// `seconds` (JSON lines, one per second with any usage).
    #[arg(long, default_value = "json")]
    format: String,
}

pub(crate) fn run(args: UsageArgs) -> ExitCode {
    crate::run_cli(print(args))
}

async fn print(args: UsageArgs) -> Result<(), String> {
    let config = crate::load_config(args.config.as_deref())?;
    let query = UsageQuery {
        from_s: args
            .from
            .as_deref()
            .map(|t| second("--from", t))
            .transpose()?,
        to_s: args.to.as_deref().map(|t| second("--to", t)).transpose()?,
        tenant: args.tenant,
        graph: args.graph,
    };
    let store = omnigraph_cloud::open_root_for_command(&config).await?;
    let records = read_records_for(&store, &query)
        .await
        .map_err(|err| err.to_string())?;
    match args.format.as_str() {
        "json" => {
            let totals = fold(&records, &query);
            println!(
                "{}",
                serde_json::to_string_pretty(&totals).expect("totals serialize")
            );
        }
        "csv" => {
            println!(
                "tenant,graph,active_seconds,requests,store_requests,store_bytes_get,store_bytes_put"
            );
            for total in fold(&records, &query) {
                let sum = |map: &std::collections::BTreeMap<String, u64>| map.values().sum::<u64>();
                let bytes = |op: &str| total.counts.store_bytes.get(op).copied().unwrap_or(0);
                println!(
                    "{},{},{},{},{},{},{}",
                    total.tenant,
                    total.graph,
                    total.active_seconds,
                    sum(&total.counts.requests),
                    sum(&total.counts.store_requests),
                    bytes("get"),
                    bytes("put")
                );
            }
        }
        "seconds" => {
            for (second, (warm, counts)) in series(&records, &query) {
                let line = json!({"second": second, "warm_graphs": warm, "counts": counts});
                println!("{line}");
            }
        }
        other => return Err(format!("--format {other}: expected json, csv or seconds")),
    }
    Ok(())
}

/// A time given on the command line, in Unix seconds.
fn second(flag: &str, text: &str) -> Result<u64, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp().max(0) as u64)
        .map_err(|_| {
            format!("{flag} {text}: expected RFC 3339 (2026-11-28T10:00:00Z) or Unix seconds")
        })
}
