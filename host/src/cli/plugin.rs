//! `webcare plugin ...`: an integrator's tools to run a plugin offline.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};

use super::Cli;
use crate::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore, Secret};
use crate::model::{
    Action, ActionKind, ActionTarget, Direction, Message, Outgoing, WebhookRequest,
};
use crate::runtime::{CallLimits, ConnectorInstance, Runtime, SharedPlugin};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show what a plugin is: describe(), its contract version, its imports.
    Inspect {
        /// The plugin component (`.wasm`).
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Call poll() once; print each message as a JSON line, the cursor on stderr.
    Poll {
        file: PathBuf,
        #[command(flatten)]
        grants: GrantArgs,
        /// The cursor to poll from (as printed by an earlier poll).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Call handle-webhook() once; print the response, then the messages.
    Webhook {
        file: PathBuf,
        #[command(flatten)]
        grants: GrantArgs,
        /// File with the raw request body (`-` for standard input).
        #[arg(long)]
        body: PathBuf,
        /// A request header, `Name: value` (repeatable).
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// HTTP method.
        #[arg(long, default_value = "POST")]
        method: String,
        /// Query string, `a=b&c=d` (percent-encoded).
        #[arg(long, default_value = "")]
        query: String,
        /// Path below the connector's webhook route.
        #[arg(long, default_value = "")]
        path: String,
    },
    /// Call perform() once on a message; print the action's result as JSON.
    Perform {
        file: PathBuf,
        #[command(flatten)]
        grants: GrantArgs,
        /// File with the message acted on: one JSON object as `poll` or
        /// `webhook` prints it (`-` for standard input).
        #[arg(long)]
        message: PathBuf,
        #[command(flatten)]
        action: ActionArgs,
        /// The action's idempotency key (the host keeps one per action and
        /// reuses it on retries). Default: a fresh one.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// When the customer last wrote in the thread, RFC 3339 (for reply
        /// windows such as Messenger's 24 hours). Default: the message's
        /// time if it is inbound, else unknown.
        #[arg(long)]
        last_inbound_at: Option<String>,
    },
}

/// The action of `webcare plugin perform`: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ActionArgs {
    /// Answer in public with this text.
    #[arg(long, value_name = "TEXT")]
    reply: Option<String>,
    /// Answer the author privately with this text.
    #[arg(long, value_name = "TEXT")]
    private_reply: Option<String>,
    /// React to the message (`like`, ...).
    #[arg(long, value_name = "REACTION")]
    react: Option<String>,
    /// Hide the message from the public.
    #[arg(long)]
    hide: bool,
    /// Make a hidden message visible again.
    #[arg(long)]
    unhide: bool,
}

impl ActionArgs {
    fn kind(&self) -> ActionKind {
        let outgoing = |text: &String| Outgoing {
            text: text.clone(),
            attachments: Vec::new(),
        };
        if let Some(text) = &self.reply {
            ActionKind::Reply(outgoing(text))
        } else if let Some(text) = &self.private_reply {
            ActionKind::PrivateReply(outgoing(text))
        } else if let Some(reaction) = &self.react {
            ActionKind::React(reaction.clone())
        } else if self.hide {
            ActionKind::Hide
        } else {
            ActionKind::Unhide
        }
    }
}

/// What a connector is granted, from flags instead of a config file.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// A setting, `key=value` (repeatable).
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// A secret, `key=value`, `key=@file` or `key=env:NAME` (repeatable).
    #[arg(long = "secret", value_name = "KEY=VALUE")]
    secrets: Vec<String>,
    /// A destination the plugin may reach: `host`, `host:port`,
    /// `http://host:port` (plain HTTP), `tcp://host:port` (repeatable).
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    allow_hosts: Vec<String>,
    /// Memory cap of the plugin, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: u64,
    /// CPU budget of the call, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    cpu_ms: u64,
    /// Wall-clock limit of the call, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// Brand id the plugin sees.
    #[arg(long, default_value = "cli")]
    brand: String,
    /// Connector id the plugin sees.
    #[arg(long, default_value = "cli")]
    connector: String,
}

fn split_pair<'a>(flag: &str, pair: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    pair.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| anyhow!("--{flag} {pair:?}: expected KEY=VALUE"))
}

fn resolve_secret(key: &str, value: &str) -> anyhow::Result<Secret> {
    if let Some(path) = value.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--secret {key}: cannot read {path}"))?;
        return Ok(Secret::new(text.trim_end_matches(['\n', '\r'])));
    }
    if let Some(var) = value.strip_prefix("env:") {
        let text = std::env::var(var)
            .map_err(|_| anyhow!("--secret {key}: environment variable {var} is not set"))?;
        return Ok(Secret::new(text));
    }
    Ok(Secret::new(value))
}

impl GrantArgs {
    fn limits(&self) -> CallLimits {
        CallLimits {
            memory_bytes: self.memory_mib * 1024 * 1024,
            cpu_budget: Duration::from_millis(self.cpu_ms),
            call_timeout: Duration::from_millis(self.timeout_ms),
            ..CallLimits::default()
        }
    }

    /// Builds a connector, checking settings against the plugin's schema.
    async fn connector(
        &self,
        runtime: &Runtime,
        plugin: SharedPlugin,
    ) -> anyhow::Result<ConnectorInstance> {
        let id = ConnectorId {
            brand: self.brand.clone(),
            connector: self.connector.clone(),
        };
        let mut given = BTreeMap::new();
        for pair in &self.settings {
            let (k, v) = split_pair("setting", pair)?;
            given.insert(k.to_string(), v.to_string());
        }
        let mut secrets = BTreeMap::new();
        for pair in &self.secrets {
            let (k, v) = split_pair("secret", pair)?;
            secrets.insert(k.to_string(), resolve_secret(k, v)?);
        }
        let allow_list = AllowList::parse(&self.allow_hosts)?;
        let grants = Grants::new(
            id,
            given,
            secrets,
            allow_list,
            IoLimits::default(),
            Arc::new(MemoryStateStore::default()),
        );
        Ok(runtime
            .configured_connector(plugin, grants, self.limits())
            .await?)
    }
}

fn print_json_line(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn read_body(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read the body from stdin")?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("cannot read --body {}", path.display()))
}

fn parse_header(h: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = h
        .split_once(':')
        .filter(|(n, _)| !n.trim().is_empty())
        .ok_or_else(|| anyhow!("--header {h:?}: expected 'Name: value'"))?;
    Ok((name.trim().to_ascii_lowercase(), value.trim().to_string()))
}

pub async fn run(cli: &Cli, cmd: &PluginCommand) -> anyhow::Result<ExitCode> {
    let runtime = super::runtime(cli)?;
    let file = match cmd {
        PluginCommand::Inspect { file, .. }
        | PluginCommand::Poll { file, .. }
        | PluginCommand::Webhook { file, .. }
        | PluginCommand::Perform { file, .. } => file,
    };
    let plugin = runtime.load_file(file).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        PluginCommand::Inspect { json, .. } => {
            let info = runtime.describe(plugin.clone()).await?;
            if *json {
                let value = serde_json::json!({
                    "plugin": info,
                    "contract": format!("webcare:connector@{}", plugin.contract),
                    "capabilities": plugin.capabilities(),
                    "imports": plugin.imports,
                    "sha256": hex::encode(plugin.digest),
                });
                print_json_line(&mut out, &value)?;
            } else {
                print_inspect(&mut out, &plugin, &info)?;
            }
        }
        PluginCommand::Poll { grants, cursor, .. } => {
            let mut connector = grants.connector(&runtime, plugin).await?;
            let batch = connector.poll(cursor.as_deref()).await?;
            for m in &batch.messages {
                print_json_line(&mut out, m)?;
            }
            for u in &batch.updates {
                print_json_line(&mut out, u)?;
            }
            out.flush()?;
            let next = batch
                .next_cursor
                .as_deref()
                .or(cursor.as_deref())
                .unwrap_or("");
            eprintln!("next cursor: {next}");
            if batch.has_more {
                eprintln!("has more: true");
            }
            if let Some(ms) = batch.retry_after_ms {
                eprintln!("retry after: {ms} ms");
            }
        }
        PluginCommand::Webhook {
            grants,
            body,
            headers,
            method,
            query,
            path,
            ..
        } => {
            let request = WebhookRequest {
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                query: url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                    .into_owned()
                    .collect(),
                headers: headers
                    .iter()
                    .map(|h| parse_header(h))
                    .collect::<anyhow::Result<_>>()?,
                body: read_body(body)?,
            };
            let mut connector = grants.connector(&runtime, plugin).await?;
            let outcome = connector.handle_webhook(request).await?;
            print_json_line(&mut out, &outcome.response)?;
            for m in &outcome.messages {
                print_json_line(&mut out, m)?;
            }
            for u in &outcome.updates {
                print_json_line(&mut out, u)?;
            }
        }
        PluginCommand::Perform {
            grants,
            message,
            action,
            idempotency_key,
            last_inbound_at,
            ..
        } => {
            let text = read_body(message)?;
            let message: Message = serde_json::from_slice(&text).with_context(|| {
                format!(
                    "--message {}: not a message as `webcare plugin poll` prints it",
                    message.display()
                )
            })?;
            let last_inbound_at = match last_inbound_at {
                Some(at) => Some(
                    at.parse::<jiff::Timestamp>()
                        .with_context(|| format!("--last-inbound-at {at:?}: not RFC 3339"))?
                        .as_millisecond(),
                ),
                None => (message.direction == Direction::Inbound).then_some(message.created_at),
            };
            let action = Action {
                idempotency_key: idempotency_key.clone().unwrap_or_else(fresh_key),
                kind: action.kind(),
            };
            let target = ActionTarget::of_message(&message, last_inbound_at);
            let mut connector = grants.connector(&runtime, plugin).await?;
            let result = connector.perform(action, target).await?;
            print_json_line(&mut out, &result)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A fresh idempotency key: 128 random bits, hex.
fn fresh_key() -> String {
    format!("cli-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// The JSON name of a unit enum value (`private_reply`, `text_list`).
fn serde_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn print_inspect(
    out: &mut impl Write,
    plugin: &SharedPlugin,
    info: &crate::model::PluginInfo,
) -> anyhow::Result<()> {
    writeln!(out, "{} {} — {}", info.name, info.version, info.description)?;
    writeln!(out, "channel:      {}", info.channel)?;
    writeln!(out, "contract:     webcare:connector@{}", plugin.contract)?;
    let features: Vec<String> = info
        .features
        .iter()
        .map(|f| format!("{f:?}").to_lowercase())
        .collect();
    writeln!(out, "features:     {}", features.join(", "))?;
    writeln!(out, "capabilities: {}", plugin.capabilities().join(", "))?;
    writeln!(out, "sha256:       {}", hex::encode(plugin.digest))?;
    if info.settings.is_empty() {
        writeln!(out, "settings:     (none)")?;
    } else {
        writeln!(out, "settings:")?;
        for s in &info.settings {
            let mut flags = vec![serde_name(&s.setting_type)];
            if s.required {
                flags.push("required".into());
            }
            if s.secret {
                flags.push("secret".into());
            }
            if let Some(d) = &s.default_value {
                flags.push(format!("default {d}"));
            }
            writeln!(
                out,
                "  {:<16} {} [{}]",
                s.name,
                s.description,
                flags.join(", ")
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_pairs() {
        assert_eq!(
            parse_header("X-Hub-Signature-256: sha256=abc").unwrap(),
            ("x-hub-signature-256".into(), "sha256=abc".into())
        );
        assert!(parse_header("nocolon").is_err());
        assert_eq!(split_pair("setting", "a=b=c").unwrap(), ("a", "b=c"));
        assert!(split_pair("setting", "=x").is_err());
    }

    #[test]
    fn secrets_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok");
        std::fs::write(&path, "s3cret\n").unwrap();
        let from_file = resolve_secret("t", &format!("@{}", path.display())).unwrap();
        assert_eq!(from_file.expose(), "s3cret");
        assert!(resolve_secret("t", "env:WEBCARE_SURELY_UNSET_VAR").is_err());
    }
}
