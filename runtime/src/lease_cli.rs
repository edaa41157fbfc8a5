//! `omnigraph-cloud lease`: read the leases of a repo, and (hidden) contend for one, which the
//! multi-process exclusivity test drives.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use omnigraph_cloud_actors::RepoKey;
use omnigraph_cloud_cluster::Clock;
use omnigraph_cloud_cluster::lease::{Acquired, LeaseKind, LeaseStore, LeaseTiming};
use omnigraph_cloud_config::{GraphId, TenantId};
use serde_json::json;

#[derive(Subcommand)]
pub(crate) enum LeaseCommand {
    /// Prints the writer, recovery and compaction leases of a repo as JSON.
    Show(RepoArgs),
    /// Takes and releases one lease of a repo repeatedly, printing one JSON line per epoch it
    /// held, until the lease has reached `--epochs`. For tests of lease exclusivity.
    #[command(hide = true)]
    Contend {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, default_value = "compaction")]
        kind: String,
        #[arg(long, default_value_t = 100)]
        epochs: u64,
        /// How long each win is held before release.
        #[arg(long, default_value = "2ms")]
        hold: humantime::Duration,
    },
}

#[derive(Args)]
pub(crate) struct RepoArgs {
    /// The node's configuration file (for the storage root and lease timing).
    #[arg(long, env = "OMNIGRAPH_CLOUD_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// `tenant/graph`.
    repo: String,
}

pub(crate) fn run(command: LeaseCommand) -> ExitCode {
    crate::run_cli(dispatch(command))
}

async fn dispatch(command: LeaseCommand) -> Result<(), String> {
    match command {
        LeaseCommand::Show(args) => {
            let (leases, key) = open(&args).await?;
            let now = Clock::system().wall_ms();
            let mut shown = Vec::new();
            for kind in LeaseKind::ALL {
                if let Some(record) = leases.get(&key, kind).await.map_err(|e| e.to_string())? {
                    shown.push(json!({
                        "kind": kind,
                        "holder": record.holder,
                        "epoch": record.epoch,
                        "expires_at_ms": record.expires_at_ms,
                        "expires_in_ms": record.expires_at_ms as i64 - now as i64,
                        "released": record.released,
                        "live": !record.is_free_at(now),
                    }));
                }
            }
            outln!("{}", serde_json::to_string_pretty(&shown).expect("json"));
            Ok(())
        }
        LeaseCommand::Contend {
            repo,
            kind,
            epochs,
            hold,
        } => {
            let kind = LeaseKind::parse(&kind).ok_or_else(|| {
                format!("unknown lease kind '{kind}': writer, recovery or compaction")
            })?;
            let (leases, key) = open(&repo).await?;
            contend(&leases, &key, kind, epochs, hold.into()).await
        }
    }
}

async fn contend(
    leases: &LeaseStore,
    key: &RepoKey,
    kind: LeaseKind,
    epochs: u64,
    hold: Duration,
) -> Result<(), String> {
    let holder = omnigraph_cloud::holder_id(Some("contender"));
    loop {
        match leases.acquire(key, kind, &holder).await {
            Ok(Acquired::Acquired(lease)) => {
                let acquired_us = now_us();
                tokio::time::sleep(hold).await;
                // Still exclusively ours at the end of the hold, as far as the store says.
                let validated = leases.validate(&lease).await.is_ok();
                let released_us = now_us();
                let epoch = lease.epoch();
                leases.release(lease).await.map_err(|e| e.to_string())?;
                outln!(
                    "{}",
                    json!({"holder": &*holder, "epoch": epoch, "acquired_us": acquired_us,
                           "released_us": released_us, "validated": validated})
                );
                if epoch >= epochs {
                    return Ok(());
                }
            }
            Ok(Acquired::Held(record)) => {
                if record.epoch >= epochs && record.released {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_micros(fastrand::u64(100..1500))).await;
            }
            Err(err) => return Err(err.to_string()),
        }
    }
}

async fn open(args: &RepoArgs) -> Result<(LeaseStore, RepoKey), String> {
    let config = crate::load_config(args.config.as_deref())?;
    let (tenant, graph) = args
        .repo
        .split_once('/')
        .ok_or_else(|| format!("'{}' is not tenant/graph", args.repo))?;
    let key = RepoKey::new(
        TenantId::new(tenant).map_err(|err| err.to_string())?,
        GraphId::new(graph).map_err(|err| err.to_string())?,
    );
    let store = omnigraph_cloud::open_root_for_command(&config).await?;
    let leases = store.leases(LeaseTiming {
        ttl: config.leases.ttl,
        safety_margin: config.leases.safety_margin,
    });
    Ok((leases, key))
}

fn now_us() -> u64 {
    Clock::system().wall_ms() * 1000
}
