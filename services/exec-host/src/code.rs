//! The code cache: each deployment package is unzipped once into `data_dir/code/<sha256hex>/`.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;

/// Unpacked packages, keyed by SHA-256; concurrent cold starts of one package unzip it once.
pub(crate) struct CodeCache {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Packages known to be unpacked: every invoke checks, and a `stat` through the blocking
    /// pool costs a thread hop on the warm path. Unpacked directories are never removed.
    unpacked: Mutex<HashSet<String>>,
}

impl CodeCache {
    pub(crate) fn new(root: PathBuf) -> Self {
        CodeCache { root, locks: Mutex::new(HashMap::new()), unpacked: Mutex::new(HashSet::new()) }
    }

    /// Returns the directory holding the unzipped package, extracting it first if needed.
    pub(crate) async fn ensure(&self, sha256_hex: &str, zip_path: &Path) -> anyhow::Result<PathBuf> {
        if self.unpacked.lock().expect("code set poisoned").contains(sha256_hex) {
            return Ok(self.root.join(sha256_hex));
        }
        let dir = self.ensure_on_disk(sha256_hex, zip_path).await?;
        self.unpacked.lock().expect("code set poisoned").insert(sha256_hex.to_string());
        Ok(dir)
    }

    async fn ensure_on_disk(&self, sha256_hex: &str, zip_path: &Path) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(
            !sha256_hex.is_empty() && sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "code sha256 {sha256_hex:?} is not hex"
        );
        let dir = self.root.join(sha256_hex);
        if tokio::fs::metadata(&dir).await.is_ok() {
            return Ok(dir);
        }
        let lock = {
            let mut locks = self.locks.lock().expect("code lock map poisoned");
            locks.entry(sha256_hex.to_string()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if tokio::fs::metadata(&dir).await.is_ok() {
            return Ok(dir);
        }
        let (root, zip_path, target) = (self.root.clone(), zip_path.to_path_buf(), dir.clone());
        tokio::task::spawn_blocking(move || extract(&root, &zip_path, &target)).await.context("join unzip task")??;
        Ok(dir)
    }
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
