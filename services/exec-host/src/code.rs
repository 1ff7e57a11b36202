//! The code cache: each deployment package is unzipped once into `data_dir/code/<sha256hex>/`
//! and deleted again when no sandbox has used it for `unpacked_code_ttl`.
//!
//! Every use holds a [`CodeLease`] from before the package is fetched until its sandbox has
//! started, and a started sandbox is attached to the entry (a `Weak`, alive until the sandbox is
//! destroyed and dropped). The collector only deletes an entry with neither, under the same lock
//! that hands out leases, so a directory is never removed under a starting or running sandbox.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::sandbox::Sandbox;

struct Entry {
    /// Leases held now (uses between the start of an invocation and its sandbox's start).
    leases: usize,
    /// Sandboxes started from the directory; dead ones are pruned by the collector.
    users: Vec<Weak<Sandbox>>,
    /// Last moment the package was known to be in use.
    last_used: Instant,
    /// The directory is known to exist (saves a `stat` on the warm path).
    unpacked: bool,
    /// Serialises unzipping of this package.
    unzip: Arc<tokio::sync::Mutex<()>>,
}

impl Entry {
    fn new(unpacked: bool) -> Self {
        Entry { leases: 0, users: Vec::new(), last_used: Instant::now(), unpacked, unzip: Arc::default() }
    }
}

struct Shared {
    root: PathBuf,
    /// Where packages fetched from a remote code storage are kept (`<sha>.zip`), deleted with
    /// the unpacked directory.
    packages_dir: PathBuf,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Shared {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Unpacked packages, keyed by SHA-256; concurrent cold starts of one package unzip it once.
pub(crate) struct CodeCache {
    shared: Arc<Shared>,
}

/// A use of one package: while it is held, the package is not deleted.
pub(crate) struct CodeLease {
    shared: Arc<Shared>,
    sha: String,
}

impl CodeLease {
    /// The directory the package is (or will be) unpacked in.
    pub(crate) fn dir(&self) -> PathBuf {
        self.shared.root.join(&self.sha)
    }
}

impl Drop for CodeLease {
    fn drop(&mut self) {
        if let Some(e) = self.shared.entries().get_mut(&self.sha) {
            e.leases -= 1;
            e.last_used = Instant::now();
        }
    }
}

impl CodeCache {
    /// Registers the packages already unpacked under `root` (from an earlier run; they are
    /// collected like any other once unused) and removes unfinished unzips and deletions.
    pub(crate) fn new(root: PathBuf, packages_dir: PathBuf, ttl: Duration) -> Self {
        let mut entries = HashMap::new();
        if let Ok(dir) = std::fs::read_dir(&root) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") || name.starts_with(".trash-") {
                    let _ = std::fs::remove_dir_all(e.path());
                } else if is_digest(&name) {
                    entries.insert(name, Entry::new(true));
                }
            }
        }
        CodeCache { shared: Arc::new(Shared { root, packages_dir, ttl, entries: Mutex::new(entries) }) }
    }

    /// Takes a lease on a package before it is fetched or unpacked.
    pub(crate) fn lease(&self, sha256_hex: &str) -> anyhow::Result<CodeLease> {
        anyhow::ensure!(is_digest(sha256_hex), "code sha256 {sha256_hex:?} is not hex");
        let mut entries = self.shared.entries();
        let e = entries.entry(sha256_hex.to_string()).or_insert_with(|| Entry::new(false));
        e.leases += 1;
        e.last_used = Instant::now();
        Ok(CodeLease { shared: self.shared.clone(), sha: sha256_hex.to_string() })
    }

    /// Returns the directory holding the unzipped package, extracting it first if needed.
    pub(crate) async fn ensure(&self, lease: &CodeLease, zip_path: &Path) -> anyhow::Result<PathBuf> {
        let dir = lease.dir();
        let unzip = {
            let entries = self.shared.entries();
            let Some(e) = entries.get(&lease.sha) else {
                anyhow::bail!("code cache entry of a leased package is missing");
            };
            if e.unpacked {
                return Ok(dir);
            }
            e.unzip.clone()
        };
        let _guard = unzip.lock().await;
        if tokio::fs::metadata(&dir).await.is_err() {
            let (root, zip_path, target) = (self.shared.root.clone(), zip_path.to_path_buf(), dir.clone());
            tokio::task::spawn_blocking(move || extract(&root, &zip_path, &target))
                .await
                .context("join unzip task")??;
        }
        if let Some(e) = self.shared.entries().get_mut(&lease.sha) {
            e.unpacked = true;
        }
        Ok(dir)
    }

    /// Records that `sandbox` runs from the leased package: it stays until the sandbox is gone.
    pub(crate) fn attach(&self, lease: &CodeLease, sandbox: &Arc<Sandbox>) {
        if let Some(e) = self.shared.entries().get_mut(&lease.sha) {
            e.users.push(Arc::downgrade(sandbox));
        }
    }

    /// Deletes the packages unused for the TTL; returns how many. Renames happen under the
    /// lock (so a new lease finds the package either whole or absent); the deletion after it.
    pub(crate) async fn collect(&self) -> usize {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || collect_blocking(&shared)).await.unwrap_or_else(|e| {
            tracing::warn!("code cache collector: {e}");
            0
        })
    }
}

fn collect_blocking(shared: &Shared) -> usize {
    let now = Instant::now();
    let mut trash = Vec::new();
    {
        let mut entries = shared.entries();
        let mut expired = Vec::new();
        for (sha, e) in entries.iter_mut() {
            e.users.retain(|w| w.strong_count() > 0);
            if e.leases > 0 || !e.users.is_empty() {
                e.last_used = now;
            } else if now.duration_since(e.last_used) >= shared.ttl {
                expired.push(sha.clone());
            }
        }
        for sha in expired {
            entries.remove(&sha);
            let dir = shared.root.join(&sha);
            if std::fs::symlink_metadata(&dir).is_ok() {
                let to = shared.root.join(format!(".trash-{}", uuid::Uuid::new_v4().simple()));
                match std::fs::rename(&dir, &to) {
                    Ok(()) => trash.push(to),
                    Err(e) => tracing::warn!(dir = %dir.display(), "move unused package aside: {e}"),
                }
            }
            let _ = std::fs::remove_file(shared.packages_dir.join(format!("{sha}.zip")));
        }
    }
    let n = trash.len();
    for dir in trash {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), "delete unused package: {e}");
        }
    }
    if n > 0 {
        tracing::debug!(deleted = n, "deleted unused unpacked packages");
    }
    n
}

fn is_digest(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Unzips into a temporary directory beside `target`, then renames it into place.
fn extract(root: &Path, zip_path: &Path, target: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
    let tmp = root.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = extract_into(zip_path, &tmp)
        .and_then(|()| std::fs::rename(&tmp, target).with_context(|| format!("rename into {}", target.display())));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn extract_into(zip_path: &Path, dir: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(zip_path).with_context(|| format!("open package {}", zip_path.display()))?;
    let mut archive = zip::ZipArchive::new(file).context("read zip directory")?;
    std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).context("read zip entry")?;
        let Some(rel) = entry.enclosed_name() else {
            anyhow::bail!("zip entry {:?} escapes the package root", entry.name());
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let out = dir.join(&rel);
        if entry.is_dir() {
            create_dirs(dir, &rel)?;
            continue;
        }
        if let Some(parent) = rel.parent() {
            create_dirs(dir, parent)?;
        }
        if entry.is_symlink() {
            let mut target = String::new();
            entry.read_to_string(&mut target).context("read symlink target")?;
            // Only links that stay inside the package are created; others are dropped.
            if link_stays_inside(&rel, Path::new(&target)) {
                std::os::unix::fs::symlink(&target, &out).with_context(|| format!("symlink {}", out.display()))?;
            } else {
                tracing::info!(entry = %rel.display(), %target, "dropping zip symlink that points outside the package");
            }
            continue;
        }
        // Everyone may read (the sandbox runs as an unprivileged user); executable bits follow the owner's.
        let mode = entry.unix_mode().unwrap_or(0o644);
        let mode = 0o644 | if mode & 0o100 != 0 { 0o111 } else { 0 };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&out)
            .with_context(|| format!("create {}", out.display()))?;
        std::io::copy(&mut entry, &mut f).with_context(|| format!("write {}", out.display()))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    // The lexical check above cannot see chains of links (`d -> .`, then `e -> d/d/../..`).
    for link in lamina_code_storage::links::drop_escaping_links(dir).context("check package symlinks")? {
        tracing::info!(entry = %link.display(), "dropping zip symlink that leaves the package through other links");
    }
    Ok(())
}

/// Creates `rel` below `dir` (0755 each), refusing to walk through symlinks.
fn create_dirs(dir: &Path, rel: &Path) -> anyhow::Result<()> {
    let mut cur = dir.to_path_buf();
    for comp in rel.components() {
        let Component::Normal(c) = comp else { anyhow::bail!("bad path {}", rel.display()) };
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => anyhow::bail!("{} is not a directory", cur.display()),
            Err(_) => {
                std::fs::create_dir(&cur).with_context(|| format!("create {}", cur.display()))?;
                std::fs::set_permissions(&cur, std::fs::Permissions::from_mode(0o755))?;
            }
        }
    }
    Ok(())
}

/// True if a relative symlink at `link` (relative to the package root) resolves inside the root.
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for comp in target.components() {
        match comp {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_containment() {
        assert!(link_stays_inside(Path::new("a/b"), Path::new("c")));
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a/b"), Path::new("../../c")));
        assert!(!link_stays_inside(Path::new("b"), Path::new("/etc/shadow")));
    }
}
