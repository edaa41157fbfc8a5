//! `og-chaos`: chaos runs of a real cluster (docs/chaos.md).
//!
//! `og-chaos run --seed 7 --binary target/debug/omnigraph-cloud` runs one seed and prints its
//! verdict; `og-chaos long --runs 50` runs seeds one after another and prints the table.
//! `og-chaos check --history F` checks a kept history again.
//! `og-chaos sim --seeds 100000` runs seeds of the deterministic simulation, and
//! `og-chaos sim --seed 7` replays one of them with its faults and verdict.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use omnigraph_cloud_actors::sim::SimConfig;
use omnigraph_cloud_chaos::history::{FinalState, Operation, check_and_cross_check};
use omnigraph_cloud_chaos::scenario::{Scenario, final_state_path, run};
use omnigraph_cloud_chaos::simulation;

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
    /// Checks a history written by `run --history` (and the healed state beside it) again,
    /// with this build's checker.
    Check {
        #[arg(long)]
        history: PathBuf,
    },
    /// The deterministic simulation (no processes, no Lance): seeds `first..first+seeds`,
    /// or one seed replayed in full with `--seed`.
    Sim {
        #[arg(long, conflicts_with_all = ["seeds", "first"])]
        seed: Option<u64>,
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        #[arg(long, default_value_t = 1)]
        first: u64,
        /// With `--seed`: also print every request of the run.
        #[arg(long)]
        history: bool,
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
        Command::Check { history } => recheck(&history),
        Command::Sim {
            seed: Some(seed),
            history,
            ..
        } => replay(seed, history),
        Command::Sim {
            seed: None,
            seeds,
            first,
            ..
        } => simulate(first, seeds),
        Command::Long { runs, first, shape } => {
            println!(
                "| seed | faults | operations | acknowledged writes | indeterminate | merges | exports | lost | partial | stale reads | backwards | shared versions | unfenced | without a version | linearizable | cross-check |"
            );
            println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
            let mut failed = Vec::new();
            for seed in first..first + runs {
                // Each run's history is kept only if it failed, for a look at what happened.
                let kept = std::env::temp_dir().join(format!("og-chaos-seed-{seed}.jsonl"));
                let outcome = runtime.block_on(run(&scenario(seed, &shape, Some(kept.clone()))));
                let v = &outcome.verdict;
                let acknowledged = |kind: &str| v.by_kind.get(kind).map_or(0, |counts| counts[0]);
                println!(
                    "| {seed} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    outcome
                        .faults
                        .iter()
                        .filter_map(|fault| fault.split(' ').nth(1))
                        .collect::<Vec<_>>()
                        .join(", "),
                    v.operations,
                    v.acknowledged_writes,
                    v.indeterminate_writes,
                    acknowledged("merge"),
                    acknowledged("export"),
                    v.lost.len(),
                    v.partial.len(),
                    v.stale_reads.len(),
                    v.went_backwards.len(),
                    v.shared_versions.len(),
                    v.unfenced.len(),
                    v.unstamped.len(),
                    if v.not_linearizable.is_empty() {
                        "yes"
                    } else {
                        "NO"
                    },
                    v.cross_check
                );
                if v.passed() {
                    let _ = std::fs::remove_file(&kept);
                    let _ = std::fs::remove_file(final_state_path(&kept));
                } else {
                    eprintln!(
                        "seed {seed} FAILED (replay: og-chaos run --seed {seed}; check again: \
                         og-chaos check --history {}): {}",
                        kept.display(),
                        serde_json::to_string(&outcome).expect("json")
                    );
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

/// One simulated seed, in full.
fn replay(seed: u64, history: bool) -> ExitCode {
    let (run, verdict) = simulation::run_and_check(seed, &SimConfig::default());
    for fault in &run.faults {
        println!(
            "fault at {:>6} ms for {:>5} ms: {:?}",
            fault.at.as_millis(),
            fault.lasts.as_millis(),
            fault.fault
        );
    }
    if history {
        for op in simulation::operations(&run) {
            println!("{}", serde_json::to_string(&op).expect("json"));
        }
        for commit in &run.commits {
            println!(
                "commit version {} by n{} under epoch {}, landed at {} ms: {:?}",
                commit.version, commit.node, commit.epoch, commit.landed_ms, commit.ids
            );
        }
    }
    println!("{}", serde_json::to_string_pretty(&verdict).expect("json"));
    if verdict.passed() {
        ExitCode::SUCCESS
    } else {
        eprintln!("seed {seed} FAILED");
        ExitCode::FAILURE
    }
}

/// Seeds `first..first+seeds` of the simulation, with totals and the seeds that failed.
fn simulate(first: u64, seeds: u64) -> ExitCode {
    let config = SimConfig::default();
    // The real time the seeds take (the simulation's own clock is paused).
    let started = tokio::time::Instant::now();
    let mut totals = simulation::SimTotals::default();
    for seed in first..first + seeds {
        let (_, verdict) = simulation::run_and_check(seed, &config);
        totals.add(&verdict);
        if !verdict.passed() {
            eprintln!(
                "seed {seed} FAILED (replay: og-chaos sim --seed {seed}): {}",
                serde_json::to_string(&verdict).expect("json")
            );
        }
        let done = seed - first + 1;
        if done.is_multiple_of(1000) && done < seeds {
            eprintln!("{done} seeds, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    let took = started.elapsed();
    println!("{}", totals.table(took));
    if totals.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failed seeds: {:?}", totals.failed);
        ExitCode::FAILURE
    }
}

fn recheck(path: &std::path::Path) -> ExitCode {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).unwrap_or_else(|err| {
            eprintln!("{}: {err}", path.display());
            std::process::exit(2)
        })
    };
    let history: Vec<Operation> = read(path)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a history line"))
        .collect();
    let present: FinalState =
        serde_json::from_str(&read(&final_state_path(path))).expect("a final state");
    let verdict = check_and_cross_check(&history, &present);
    println!("{}", serde_json::to_string_pretty(&verdict).expect("json"));
    if verdict.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
