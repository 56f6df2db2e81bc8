//! `webcare run`, `check`, `queue list`, `demo`: the service commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;

use crate::config::Config;
use crate::queue::{CaseFilter, CaseStatus, Storage};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::service::{RunningService, shutdown_signal, spec_from_config};

fn load(path: &Path) -> anyhow::Result<Config> {
    crate::config::load(path)
        .map_err(|errors| anyhow!("{} is not valid:\n{errors}", path.display()))
}

/// The config for `webcare queue ...`, which needs no connector's secrets.
pub(super) fn load_for_queue(path: &Path) -> anyhow::Result<Config> {
    crate::config::load_without_secrets(path)
        .map_err(|errors| anyhow!("{} is not valid:\n{errors}", path.display()))
}

fn runtime_for(config: &Config) -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeConfig {
        cache_dir: Some(config.host.component_cache.clone()),
        ..RuntimeConfig::default()
    })?)
}

/// Opens the queue, with the outbox on when the config has a `[stream]`:
/// every command that changes the queue then writes its events.
pub(super) async fn open_storage(config: &Config) -> anyhow::Result<Arc<dyn Storage>> {
    let options = crate::queue::OpenOptions {
        outbox: config.stream.is_some(),
    };
    Ok(crate::queue::open_with(&config.storage, options).await?)
}

/// `webcare check --config F`
pub async fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let runtime = runtime_for(&config)?;
    crate::config::check(&config, &runtime)
        .await
        .map_err(|errors| anyhow!("{} is not valid:\n{errors}", path.display()))?;
    let connectors: usize = config.brands.iter().map(|b| b.connectors.len()).sum();
    println!(
        "{}: ok ({} brands, {connectors} connectors)",
        path.display(),
        config.brands.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `webcare run --config F`: runs until SIGINT/SIGTERM.
pub async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let runtime = runtime_for(&config)?;
    crate::config::check(&config, &runtime)
        .await
        .map_err(|errors| anyhow!("{} is not valid:\n{errors}", path.display()))?;
    let spec = spec_from_config(&config)?;
    let storage = open_storage(&config).await?;
    let service = RunningService::start(&spec, &runtime, storage).await?;
    eprintln!("webcare listening on http://{}", service.addr);
    shutdown_signal().await;
    eprintln!("stopping: finishing in-flight calls");
    if service.stop().await {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("some calls did not finish within the shutdown grace period");
        Ok(ExitCode::FAILURE)
    }
}

/// `webcare queue list`
pub async fn list(
    path: &Path,
    brand: Option<String>,
    status: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = load_for_queue(path)?;
    if let Some(b) = &brand
        && !config.brands.iter().any(|x| &x.id == b)
    {
        return Err(anyhow!(
            "--brand {b:?}: no such brand in {}",
            path.display()
        ));
    }
    let status = status
        .map(|s| {
            CaseStatus::parse(&s).ok_or_else(|| {
                anyhow!("--status {s:?}: use new, open, pending, escalated or closed")
            })
        })
        .transpose()?;
    let storage = open_storage(&config).await?;
    let cases = storage
        .cases(&CaseFilter {
            brand,
            status,
            limit: 0,
        })
        .await?;
    if json {
        use std::io::Write;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for case in &cases {
            serde_json::to_writer(&mut out, case)?;
            out.write_all(b"\n")?;
        }
    } else {
        super::queue::print_cases(&cases);
    }
    Ok(ExitCode::SUCCESS)
}

/// `webcare queue messages`
pub async fn messages(
    path: &Path,
    brand: &str,
    connector: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = load_for_queue(path)?;
    let Some(known) = config.brands.iter().find(|b| b.id == brand) else {
        return Err(anyhow!(
            "--brand {brand:?}: no such brand in {}",
            path.display()
        ));
    };
    if let Some(c) = connector
        && !known.connectors.iter().any(|x| x.id == c)
    {
        return Err(anyhow!(
            "--connector {c:?}: brand {brand:?} has no such connector in {}",
            path.display()
        ));
    }
    let storage = open_storage(&config).await?;
    let messages: Vec<_> = storage
        .messages(brand, 0)
        .await?
        .into_iter()
        .filter(|m| connector.is_none_or(|c| m.connector == c))
        .collect();
    if json {
        use std::io::Write;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for stored in &messages {
            serde_json::to_writer(&mut out, &stored.message)?;
            out.write_all(b"\n")?;
        }
    } else {
        super::queue::print_messages(&messages);
    }
    Ok(ExitCode::SUCCESS)
}

/// `webcare demo`
pub async fn demo(plugin_dir: PathBuf, data_dir: PathBuf, serve: bool) -> anyhow::Result<ExitCode> {
    crate::demo::run(crate::demo::DemoOptions {
        plugin_dir,
        data_dir,
        serve,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
