//! The second step of checking a config: what only the plugins can tell.

use std::collections::HashMap;
use std::path::Path;

use super::{Config, ConfigError, ConfigErrors, ConnectorConfig};
use crate::model::{Feature, PluginInfo};
use crate::runtime::Runtime;

/// Loads the plugin of every enabled connector (each file once), asks it to
/// describe itself, and checks the connector's settings and secret names
/// against the schema it declares. A plugin that cannot be loaded (not a
/// component, the wrong world, an unsupported contract version) is reported
/// against each connector that uses it.
pub async fn check(config: &Config, runtime: &Runtime) -> Result<(), ConfigErrors> {
    let mut described: HashMap<&Path, Result<PluginInfo, String>> = HashMap::new();
    let mut errors = Vec::new();
    for (brand, connector) in config.connectors().filter(|(_, c)| c.enabled) {
        if !described.contains_key(connector.plugin.as_path()) {
            let info = describe(runtime, &connector.plugin).await;
            described.insert(&connector.plugin, info);
        }
        let error = |key: &str, message: String| ConfigError {
            file: config.path.clone(),
            line: Some(
                connector
                    .key_lines
                    .get(key)
                    .copied()
                    .unwrap_or(connector.line),
            ),
            key: format!("brand {:?} connector {:?}: {key}", brand.id, connector.id),
            message,
        };
        match &described[connector.plugin.as_path()] {
            Err(message) => errors.push(error("plugin", message.clone())),
            Ok(info) => {
                errors.extend(
                    schema_problems(info, connector)
                        .into_iter()
                        .map(|(key, problem)| error(&key, problem)),
                );
                if let Some(problem) = intake_problem(info, connector) {
                    errors.push(error("poll", problem));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors::sorted(errors))
    }
}

async fn describe(runtime: &Runtime, plugin: &Path) -> Result<PluginInfo, String> {
    let loaded = runtime.load_file(plugin).await.map_err(|e| e.to_string())?;
    runtime.describe(loaded).await.map_err(|e| {
        format!(
            "the plugin {} failed to describe itself: {e}; fix or rebuild the plugin",
            plugin.display()
        )
    })
}

/// A connector that can never receive anything: polling switched off (or
/// not offered by the plugin) and no webhooks either.
fn intake_problem(info: &PluginInfo, connector: &ConnectorConfig) -> Option<String> {
    let polls = info.features.contains(&Feature::Poll);
    let webhooks = info.features.contains(&Feature::Webhook);
    match (connector.poll, polls, webhooks) {
        (false, _, false) => Some(format!(
            "polling is off, and the plugin {:?} takes no webhooks: this connector would never \
             receive anything; remove `poll = false`",
            info.name
        )),
        (true, false, false) => Some(format!(
            "the plugin {:?} neither polls nor takes webhooks",
            info.name
        )),
        _ => None,
    }
}

/// The connector's settings and secrets checked against the plugin's schema,
/// each problem keyed `settings.<name>` or `secrets.<name>`: where the
/// operator wrote the key, or, for a missing one, where the plugin wants it.
pub(super) fn schema_problems(
    info: &PluginInfo,
    connector: &ConnectorConfig,
) -> Vec<(String, String)> {
    let check = |secret_names: Vec<&str>| {
        info.apply_settings(&connector.settings, secret_names)
            .err()
            .unwrap_or_default()
    };
    // With every declared secret given, only the settings can be at fault;
    // what the real secrets add on top is about the secrets.
    let of_settings = check(
        info.settings
            .iter()
            .filter(|s| s.secret)
            .map(|s| s.name.as_str())
            .collect(),
    );
    check(connector.secrets.keys().map(String::as_str).collect())
        .into_iter()
        .map(|problem| {
            let table = if of_settings.contains(&problem) {
                "settings"
            } else {
                "secrets"
            };
            (format!("{table}.{}", problem.key), problem.problem)
        })
        .collect()
}
