//! `omnigraph-cloud`: one binary, the deployment mode is configuration.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use omnigraph_cloud::Node;
use omnigraph_cloud_config::{DEFAULT_CONFIG_TOML, LogFormat, NodeConfig};
use tracing_subscriber::EnvFilter;

/// `println!` for command output. A closed stdout (`omnigraph-cloud config check F | head`)
/// ends the program quietly, as command-line tools do, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod failpoints;
mod lease_cli;
mod publish;
mod tools;
mod usage_cli;

fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {err}");
        std::process::exit(1);
    }
}

#[derive(Parser)]
#[command(
    name = "omnigraph-cloud",
    version,
    about = "Managed data plane for OmniGraph graphs on object storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a node. Without a config file: 127.0.0.1:8080, storage file://./omnigraph-data.
    Serve {
        /// TOML configuration file; OMNIGRAPH_CLOUD_<SECTION>__<KEY> variables override it.
        #[arg(long, env = "OMNIGRAPH_CLOUD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Authentication helpers for operators.
    Auth {
        #[command(subcommand)]
        command: tools::AuthCommand,
    },
    /// Signed policy bundles: make a key, sign, verify.
    Bundle {
        #[command(subcommand)]
        command: tools::BundleCommand,
    },
    /// Leases in the storage root: who writes, recovers and compacts a repo.
    Lease {
        #[command(subcommand)]
        command: lease_cli::LeaseCommand,
    },
    /// Usage per tenant and graph, folded from the records nodes write under the root.
    Usage(usage_cli::UsageArgs),
    /// The control plane: `rebuild` reads the tenant directory back from the root and
    /// publishes the bundle it makes again (needs the `[control]` files).
    Control {
        #[command(subcommand)]
        command: ControlCommand,
    },
}

#[derive(Subcommand)]
enum ControlCommand {
    /// Rebuilds the control plane's state from the root and republishes the bundle.
    Rebuild {
        #[arg(long, env = "OMNIGRAPH_CLOUD_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validates a configuration file (with the environment's overrides) and prints the result.
    Check { file: PathBuf },
    /// Prints the default configuration file, every key with its default.
    Default,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Auth { command } => tools::auth(command),
        Command::Bundle { command } => tools::bundle(command),
        Command::Lease { command } => lease_cli::run(command),
        Command::Usage(args) => usage_cli::run(args),
        Command::Control {
            command: ControlCommand::Rebuild { config },
        } => run_cli(async move {
            let config = load_config(config.as_deref())?;
            let summary = omnigraph_cloud::rebuild_control(&config).await?;
            outln!("{}", serde_json::to_string_pretty(&summary).expect("json"));
            Ok(())
        }),
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            write_stdout(DEFAULT_CONFIG_TOML);
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match load_config(Some(&file)) {
            Ok(config) => {
                outln!("{}: ok", file.display());
                outln!("{config:#?}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let config = match load_config(config.as_deref()) {
                Ok(config) => config,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(2);
                }
            };
            if let Err(message) = failpoints::arm_from_env() {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
            init_logging(&config);
            // The engine's futures are large; give worker threads room beyond the 2 MiB default.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .thread_stack_size(8 * 1024 * 1024)
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    tracing::error!("{message}");
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The configuration in `path` (or the defaults), with the environment's overrides.
pub(crate) fn load_config(path: Option<&std::path::Path>) -> Result<NodeConfig, String> {
    let source = match path {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read config file {}: {err}", path.display()))?,
        ),
        None => None,
    };
    NodeConfig::load(source.as_deref(), std::env::vars()).map_err(|err| err.to_string())
}

/// Runs a command's future on a current-thread runtime; its error is printed and fails the
/// process.
pub(crate) fn run_cli(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &NodeConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(config: NodeConfig) -> Result<(), String> {
    let node = Node::start(config).await.map_err(|err| err.to_string())?;
    shutdown_signal().await;
    tracing::info!("shutdown requested; finishing in-flight requests");
    node.shutdown().await.map_err(|err| err.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
