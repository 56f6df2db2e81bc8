//! Builds the guest plugins for `wasm32-wasip2` once per test process.
//!
//! The nested cargo uses its own target directory (`target/plugins`): a
//! cargo inside `cargo test` on the same directory would wait on the outer
//! one's lock forever. Set `WEBCARE_PLUGIN_DIR` to use prebuilt plugins.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Plugin crates the tests need, by package name.
pub const PACKAGES: &[&str] = &[
    "template-connector",
    "twitter-connector",
    "facebook-connector",
    "discourse-connector",
    "rss-connector",
    "email-connector",
    "hostile-plugin",
    "noop-plugin",
    "guest-bench-plugin",
    "skewed-plugin",
    "not-a-connector",
];

pub fn workspace_root() -> PathBuf {
    // This file is compiled into crates at `tests/` and `host/`: both sit
    // one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate has a parent directory")
        .to_path_buf()
}

fn build_all() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEBCARE_PLUGIN_DIR") {
        return PathBuf::from(dir);
    }
    let root = workspace_root();
    let target_dir = root.join("target").join("plugins");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
            "--target-dir",
        ])
        .arg(&target_dir);
    // `WEBCARE_PLUGIN_PACKAGES=a,b` narrows the build while working on one
    // plugin; tests of plugins left out fail with "was not built".
    let only = std::env::var("WEBCARE_PLUGIN_PACKAGES").ok();
    for p in PACKAGES {
        if only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|o| o.trim() == *p))
        {
            cmd.args(["-p", p]);
        }
    }
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the test plugins");
    assert!(
        status.success(),
        "building the test plugins failed: {status}"
    );
    target_dir.join("wasm32-wasip2").join("plugin")
}

/// Path of a built plugin, e.g. `plugin_path("template_connector")`.
pub fn plugin_path(file_stem: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(build_all);
    let path = dir.join(format!("{file_stem}.wasm"));
    assert!(path.exists(), "plugin {} was not built", path.display());
    path
}
