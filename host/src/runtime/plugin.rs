//! A loaded plugin: one compiled, pre-linked component, shared by every
//! connector (of every brand) that uses the same `.wasm`.

use std::sync::Arc;

use tokio::sync::OnceCell;
use wasmtime::component::Component;

use super::bindings::{CONNECTOR_EXPORT, ContractLine, Pre, SUPPORTED_RANGE};
use super::cache::Origin;
use super::error::PluginError;
use crate::model::PluginInfo;

/// What the host learned about a plugin when it loaded it.
pub struct Plugin {
    /// File name or other label, for messages.
    pub what: String,
    /// SHA-256 of the `.wasm`.
    pub digest: [u8; 32],
    /// The contract version the plugin was built against.
    pub contract: semver::Version,
    pub line: ContractLine,
    /// Everything the component imports (capabilities and WASI).
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Whether this load compiled or came from the disk cache.
    pub origin: Origin,
    pub(crate) pre: Pre,
    pub(crate) info: OnceCell<PluginInfo>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("what", &self.what)
            .field("contract", &self.contract.to_string())
            .finish_non_exhaustive()
    }
}

/// Rejects what is not a component before Cranelift sees it, with a hint.
pub fn check_component_header(bytes: &[u8], what: &str) -> Result<(), PluginError> {
    let not = |detail: &str| PluginError::NotAComponent {
        what: what.to_string(),
        detail: detail.to_string(),
    };
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(not("it does not start with the WebAssembly magic bytes"));
    }
    // Bytes 4..8: version and layer. Layer 1 is a component, 0 a core module.
    match bytes[6..8] {
        [1, 0] => Ok(()),
        [0, 0] => Err(not(
            "it is a core WebAssembly module; build the plugin for the wasm32-wasip2 target, which writes a component",
        )),
        _ => Err(not("unknown WebAssembly layer")),
    }
}

/// Reads the contract version from the connector export's name.
/// Returns the version, the line that serves it, and the export's full name.
pub fn contract_version(
    what: &str,
    exports: &[String],
) -> Result<(semver::Version, ContractLine, String), PluginError> {
    let prefix = format!("{CONNECTOR_EXPORT}@");
    let Some(name) = exports
        .iter()
        .find(|e| e.starts_with(&prefix) || e.as_str() == CONNECTOR_EXPORT)
    else {
        return Err(PluginError::WrongWorld {
            what: what.to_string(),
            exports: exports.to_vec(),
        });
    };
    let version_text = name.strip_prefix(&prefix).unwrap_or("(unversioned)");
    let unsupported = || PluginError::UnsupportedVersion {
        what: what.to_string(),
        found: version_text.to_string(),
        supported: SUPPORTED_RANGE.to_string(),
    };
    let version = semver::Version::parse(version_text).map_err(|_| unsupported())?;
    let line = ContractLine::for_version(&version).ok_or_else(unsupported)?;
    Ok((version, line, name.clone()))
}

/// Names of a component's imports and exports.
pub fn interface_names(
    component: &Component,
    engine: &wasmtime::Engine,
) -> (Vec<String>, Vec<String>) {
    let ty = component.component_type();
    let imports = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    (imports, exports)
}

/// The webcare capabilities a plugin imports (`http`, `socket`, ...).
impl Plugin {
    pub fn capabilities(&self) -> Vec<String> {
        self.imports
            .iter()
            .filter_map(|i| i.strip_prefix("webcare:connector/"))
            .map(|i| i.split('@').next().unwrap_or(i).to_string())
            .filter(|i| i != "types")
            .collect()
    }
}

/// Interface prefixes a plugin may import. Anything else (filesystem,
/// sockets, HTTP outside the `http` capability) is refused at load time.
pub const GRANTED_IMPORTS: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "webcare:connector/",
];

/// Refuses a component that imports interfaces the host does not grant.
pub fn check_imports(what: &str, imports: &[String]) -> Result<(), PluginError> {
    let ungranted: Vec<String> = imports
        .iter()
        .filter(|i| !GRANTED_IMPORTS.iter().any(|g| i.starts_with(g)))
        .cloned()
        .collect();
    if ungranted.is_empty() {
        Ok(())
    } else {
        Err(PluginError::Ungranted {
            what: what.to_string(),
            imports: ungranted,
        })
    }
}

pub type SharedPlugin = Arc<Plugin>;
