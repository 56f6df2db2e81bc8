//! The `webcare` command line. Output for people and scripts goes to
//! stdout; diagnostics and logs go to stderr.

mod plugin;
pub mod queue;
mod service;
mod status;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::runtime::{Runtime, RuntimeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "webcare",
    version,
    about = "Plugin host for social customer care"
)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `webcare=debug`.
    /// Defaults to `RUST_LOG`, else errors plus the plugin's own log lines.
    #[arg(long, global = true, env = "WEBCARE_LOG")]
    pub log: Option<String>,

    /// Directory for compiled components.
    #[arg(long, global = true, env = "WEBCARE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile plugins on every load; write nothing to disk.
    #[arg(long, global = true)]
    pub no_cache: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host: poll connectors, take webhooks, fill the care queue.
    Run {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration, its plugins and their settings.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Look into the care queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Run the demo: simulated channels, two brands, a fresh SQLite queue.
    Demo {
        /// Directory of the built connector plugins (`*.wasm`).
        #[arg(
            long,
            env = "WEBCARE_DEMO_PLUGIN_DIR",
            default_value = "target/plugins/wasm32-wasip2/plugin"
        )]
        plugin_dir: PathBuf,
        /// Directory for the demo's config and queue (wiped first).
        #[arg(long, default_value = "target/webcare-demo")]
        data_dir: PathBuf,
        /// Keep serving webhooks, /healthz and /metrics after the summary.
        #[arg(long)]
        serve: bool,
    },
    /// Run and inspect plugins offline, without a configuration file.
    #[command(subcommand)]
    Plugin(Box<plugin::PluginCommand>),
    /// Which host polls which connector (poll leases) and each cursor.
    Status {
        #[arg(long, short)]
        config: PathBuf,
        /// One JSON object per connector instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Manage API tokens for agents, second-line teams and admins.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and only its hash is stored.
    Create {
        #[arg(long, short)]
        config: PathBuf,
        /// Who holds it (an agent's or team's name); shown in audit trails.
        #[arg(long)]
        name: String,
        /// The brand it is scoped to.
        #[arg(long, required_unless_present = "agency", conflicts_with = "agency")]
        brand: Option<String>,
        /// An agency token: admin of every brand.
        #[arg(long)]
        agency: bool,
        /// agent, second_line or admin.
        #[arg(long, default_value = "agent")]
        role: String,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this brand's tokens.
        #[arg(long)]
        brand: Option<String>,
    },
    /// Revoke a token by its id; it stops working at once.
    Revoke {
        #[arg(long, short)]
        config: PathBuf,
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List cases, newest activity first.
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this brand's cases.
        #[arg(long)]
        brand: Option<String>,
        /// Only cases in this state: new, open, pending, escalated, closed.
        #[arg(long)]
        status: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List a brand's messages, oldest first.
    Messages {
        #[arg(long, short)]
        config: PathBuf,
        /// The brand whose messages to list.
        #[arg(long)]
        brand: String,
        /// Only messages of this connector.
        #[arg(long)]
        connector: Option<String>,
        /// The messages as JSON lines, each exactly as the connector
        /// reported it (the same shape as `webcare plugin poll` prints).
        #[arg(long)]
        json: bool,
    },
}

/// Where compiled components go when nothing else is said.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("webcare").join("components"))
}

fn init_logging(filter: Option<&str>, command: &Command) {
    let default = match command {
        // The host's own warnings repeat what the CLI prints as its error
        // line; the plugin's log lines are what an integrator wants to see.
        Command::Plugin(_) => "warn,webcare=error,webcare::guest=info",
        Command::Run { .. } => "info",
        Command::Check { .. }
        | Command::Queue(_)
        | Command::Demo { .. }
        | Command::Token(_)
        | Command::Status { .. } => "warn",
    };
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Builds the runtime the CLI commands share.
fn runtime(cli: &Cli) -> anyhow::Result<Runtime> {
    let cache_dir = if cli.no_cache {
        None
    } else {
        cli.cache_dir.clone().or_else(default_cache_dir)
    };
    Ok(Runtime::new(RuntimeConfig {
        cache_dir,
        ..RuntimeConfig::default()
    })?)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref(), &cli.command);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match &cli.command {
            Command::Run { config } => service::run(config).await,
            Command::Check { config } => service::check(config).await,
            Command::Queue(QueueCommand::List {
                config,
                brand,
                status,
                json,
            }) => service::list(config, brand.clone(), status.clone(), *json).await,
            Command::Queue(QueueCommand::Messages {
                config,
                brand,
                connector,
                json,
            }) => service::messages(config, brand, connector.as_deref(), *json).await,
            Command::Demo {
                plugin_dir,
                data_dir,
                serve,
            } => service::demo(plugin_dir.clone(), data_dir.clone(), *serve).await,
            Command::Plugin(cmd) => plugin::run(&cli, cmd).await,
            Command::Token(cmd) => token::run(cmd).await,
            Command::Status { config, json } => status::run(config, *json).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// One clear line; a guest backtrace, when there is one, below it.
fn report(e: &anyhow::Error) {
    eprintln!("error: {e}");
    if let Some(plugin_error) = e.downcast_ref::<crate::runtime::PluginError>() {
        let frames = plugin_error.backtrace();
        if !frames.is_empty() {
            eprintln!("guest backtrace (innermost first):");
            for frame in frames {
                eprintln!("  at {frame}");
            }
        }
    }
}
