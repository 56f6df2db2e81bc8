//! Compiled components cached on disk.
//!
//! Compiling a component with Cranelift costs tens of milliseconds (release)
//! to a second (debug); loading the precompiled artefact costs ~0.1 ms. The
//! key is a SHA-256 of the component bytes together with the engine's
//! compatibility hash (wasmtime version, target, every setting that changes
//! the generated code), so a new wasmtime or a changed engine setting never
//! loads a stale artefact. Files are written to a temporary name and renamed,
//! so a crash never leaves a torn artefact under a valid name.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from the disk cache.
    Cached,
    /// Compiled now (and written to the cache, if there is one).
    Compiled,
}

/// Feeds `Hash` output into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only used to feed bytes into SHA-256")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// SHA-256 of the component bytes: the identity of a plugin build.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: [u8; 32],
}

impl ComponentCache {
    /// A cache in `dir` (created when first written), or no disk cache at all.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            engine_key: hasher.0.finalize().into(),
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn path_for(&self, component_digest: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut h = Sha256::new();
        h.update(component_digest);
        h.update(self.engine_key);
        Some(dir.join(format!("{}.cwasm", hex::encode(h.finalize()))))
    }

    /// Loads the component for `bytes`, from the cache if possible.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        component_digest: &[u8; 32],
    ) -> wasmtime::Result<(Component, Origin)> {
        let path = self.path_for(component_digest);
        if let Some(path) = &path
            && path.exists()
        {
            // SAFETY: the file is one this cache wrote (named by the hash of
            // its source and of the engine settings, written atomically) in
            // a directory owned by the host; `deserialize_file` additionally
            // checks the wasmtime version and engine settings in its header.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(component) => return Ok((component, Origin::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cached component: {e:#}")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = &path
            && let Err(e) = write_atomically(path, &component.serialize()?)
        {
            tracing::warn!(path = %path.display(), "cannot write the component cache: {e}");
        }
        Ok((component, Origin::Compiled))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)
}

/// A uniquely named temporary file beside the target.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let unique = format!(
        ".tmp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let path = dir.join(unique);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}
