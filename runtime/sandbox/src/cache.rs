//! The on-disk cache of precompiled plugins.
//!
//! Compiling a component is slow (seconds for a large one); loading its precompiled artifact
//! is fast. Artifacts are keyed by the component digest and the engine's compatibility hash,
//! so an upgrade of the compiler or a change of engine settings never loads a stale one.
//!
//! Deserializing an artifact is only safe for bytes this daemon produced: wasmtime trusts
//! them as machine code. Every artifact is therefore written with a keyed hash (sha256 over a
//! secret created with the cache, kept beside it with mode 0600) and verified before it is
//! deserialized; an artifact that fails the check is ignored and compiled again.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::digest::Digest;

const KEY_FILE: &str = "artifact.key";
const MAC_BYTES: usize = 32;

/// Precompiled artifacts in a directory (or nowhere, for an in-memory sandbox).
#[derive(Debug)]
pub struct ArtifactCache {
    dir: Option<PathBuf>,
    key: [u8; 32],
    engine_hash: String,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Compiled now.
    Compiled,
    /// Loaded from a verified artifact.
    Cached,
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache in `dir`.
    pub fn open(dir: Option<PathBuf>, engine: &Engine) -> std::io::Result<ArtifactCache> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = format!("{:016x}", hasher.finish());
        let key = match &dir {
            Some(dir) => {
                fs::create_dir_all(dir)?;
                load_or_create_key(&dir.join(KEY_FILE))?
            }
            None => [0; 32],
        };
        Ok(ArtifactCache {
            dir,
            key,
            engine_hash,
        })
    }

    fn path(&self, digest: &Digest) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{}-{}.cwasm", digest.hex(), self.engine_hash)))
    }

    fn mac(&self, artifact: &[u8]) -> [u8; MAC_BYTES] {
        blake3::keyed_hash(&self.key, artifact).into()
    }

    /// The component for `bytes`, from a verified artifact if there is one, else compiled
    /// (and its artifact written).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(Component, Provenance), String> {
        if let Some(component) = self.path(digest).and_then(|p| self.load(engine, &p)) {
            return Ok((component, Provenance::Cached));
        }
        let component = Component::from_binary(engine, bytes).map_err(|e| format!("{e:#}"))?;
        if let Some(path) = self.path(digest)
            && let Err(e) = self.store(&component, &path)
        {
            // The plugin still works; the next start compiles again.
            tracing::warn!(path = %path.display(), error = %e, "could not write artifact");
        }
        Ok((component, Provenance::Compiled))
    }

    fn load(&self, engine: &Engine, path: &Path) -> Option<Component> {
        let file = fs::read(path).ok()?;
        if file.len() < MAC_BYTES {
            return None;
        }
        let (mac, artifact) = file.split_at(MAC_BYTES);
        if !constant_time_eq(mac, &self.mac(artifact)) {
            tracing::warn!(path = %path.display(), "artifact failed verification; compiling again");
            return None;
        }
        // SAFETY: the artifact was written by this cache (its keyed hash verifies), for an
        // engine with the same compatibility hash; deserialize checks the rest.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, artifact) };
        component
            .inspect_err(
                |e| tracing::warn!(path = %path.display(), error = %e, "artifact unusable"),
            )
            .ok()
    }

    fn store(&self, component: &Component, path: &Path) -> Result<(), String> {
        let artifact = component.serialize().map_err(|e| e.to_string())?;
        let tmp = unique_tmp(path);
        let write = || -> std::io::Result<()> {
            let mut f = private_file(&tmp)?;
            f.write_all(&self.mac(&artifact))?;
            f.write_all(&artifact)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            _ = fs::remove_file(&tmp);
            e.to_string()
        })
    }
}

/// Compares without an early exit, so the time taken says nothing about the expected value.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = unique_tmp(path);
    let mut f = private_file(&tmp)?;
    f.write_all(&key)?;
    f.sync_all()?;
    // Another sandbox may create the key at the same moment: linking fails if one exists,
    // and then that one is the key.
    let linked = fs::hard_link(&tmp, path);
    _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = fs::read(path)?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| std::io::Error::other("artifact key file is corrupt"))
        }
        Err(e) => Err(e),
    }
}

/// A temporary name beside `path` that no other writer, in this process or another, uses.
fn unique_tmp(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}
