//! `og-chaos`: chaos runs of a real cluster (docs/chaos.md).
//!
//! `og-chaos run --seed 7 --binary target/debug/omnigraph-cloud` runs one seed and prints its
//! verdict; `og-chaos long --runs 50` runs seeds one after another and prints the table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use omnigraph_cloud_chaos::scenario::{Scenario, run};

#[derive(Parser)]
#[command(about = "Chaos runs of an omnigraph-cloud cluster, checked")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One seeded run; its history and verdict. The same seed replays the same faults.
    Run {
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        shape: Shape,
        /// Where to write the history (JSON lines).
        #[arg(long)]
        history: Option<PathBuf>,
    },
    /// Seeds `first..first+runs`, one after another; a table of what each found.
    Long {
        #[arg(long, default_value_t = 50)]
        runs: u64,
        #[arg(long, default_value_t = 1)]
        first: u64,
        #[command(flatten)]
        shape: Shape,
    },
}

#[derive(clap::Args, Clone)]
struct Shape {
    /// The node binary.
    #[arg(long, env = "OMNIGRAPH_NODE_BIN")]
    binary: PathBuf,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 4)]
    clients: u32,
}

fn scenario(seed: u64, shape: &Shape, history: Option<PathBuf>) -> Scenario {
    Scenario {
        seed,
        duration: Duration::from_secs(shape.seconds),
        nodes: shape.nodes,
        clients: shape.clients,
        binary: shape.binary.clone(),
        history,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match cli.command {
        Command::Run {
            seed,
            shape,
            history,
        } => {
            let outcome = runtime.block_on(run(&scenario(seed, &shape, history)));
            println!("{}", serde_json::to_string_pretty(&outcome).expect("json"));
            if outcome.verdict.passed() {
                ExitCode::SUCCESS
            } else {
                eprintln!("seed {seed} FAILED: replay with og-chaos run --seed {seed}");
                ExitCode::FAILURE
            }
        }
        Command::Long { runs, first, shape } => {
            println!(
                "| seed | faults | operations | acknowledged writes | indeterminate | lost | backwards | shared versions | unfenced |"
            );
            println!("|---|---|---|---|---|---|---|---|---|");
            let mut failed = Vec::new();
            for seed in first..first + runs {
                let outcome = runtime.block_on(run(&scenario(seed, &shape, None)));
                let v = &outcome.verdict;
                println!(
                    "| {seed} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    outcome.faults.len(),
                    v.operations,
                    v.acknowledged_writes,
                    v.indeterminate_writes,
                    v.lost.len(),
                    v.went_backwards.len(),
                    v.shared_versions.len(),
                    v.unfenced.len()
                );
                if !v.passed() {
                    failed.push(seed);
                }
            }
            if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("failed seeds: {failed:?}");
                ExitCode::FAILURE
            }
        }
    }
}
