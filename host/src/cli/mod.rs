//! The `webcare` command line. Output for people and scripts goes to
//! stdout; diagnostics and logs go to stderr.

mod plugin;

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
    /// Run and inspect plugins offline, without a configuration file.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Where compiled components go when nothing else is said.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("webcare").join("components"))
}

fn init_logging(filter: Option<&str>) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        // The host's own warnings repeat what the CLI prints as its error
        // line; the plugin's log lines are what an integrator wants to see.
        .unwrap_or_else(|| "warn,webcare=error,webcare::guest=info".to_string());
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
    init_logging(cli.log.as_deref());
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
            Command::Plugin(cmd) => plugin::run(&cli, cmd).await,
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
