//! Deleting a blob without racing a new reference to it.
//!
//! Blobs are shared by content: two accounts uploading the same zip share one file. Metadata reports
//! a digest unreferenced in the transaction that dropped its last reference, but a CreateFunction
//! of the same zip (any account) may commit a new reference before the file is removed. So the
//! file is first *hidden* (renamed into `.trash/`, atomic), references are checked again, and the
//! blob is then either put back or removed for good ([`CodeStorage::settle`]).
//!
//! Why no reference is lost: a writer commits its reference and only then calls `ensure`, which
//! re-writes a missing blob. If that reference committed before the second check, the check sees
//! it and the blob is put back; if after, the writer's `ensure` runs after the hide and finds the
//! blob missing, so it writes it again. A reader that finds a blob missing while it is hidden
//! (only a concurrently created function can) takes it back from the trash, and a process that
//! dies between hide and settle leaves a tombstone that the next [`CodeStorage::open`] puts back
//! (a leak at worst, never a loss).

use std::path::{Path, PathBuf};

use crate::CodeStorage;

const TRASH: &str = ".trash";

/// A tombstone is `<sha256 hex>.<32 hex>`; anything else is refused (it names a file to move).
fn valid_tombstone(name: &str) -> Option<&str> {
    let (sha, tag) = name.split_once('.')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (hex(sha, 64) && hex(tag, 32)).then_some(sha)
}

fn trash(root: &Path) -> PathBuf {
    root.join(TRASH)
}

impl CodeStorage {
    /// Moves the blob aside; `None` when there is none (already gone, or hidden by another delete).
    pub async fn hide(&self, sha256_hex: &str) -> std::io::Result<Option<String>> {
        let dir = trash(&self.root);
        tokio::fs::create_dir_all(&dir).await?;
        let tombstone = format!("{sha256_hex}.{}", uuid::Uuid::new_v4().simple());
        match tokio::fs::rename(self.path(sha256_hex), dir.join(&tombstone)).await {
            Ok(()) => Ok(Some(tombstone)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts a hidden blob back (`keep`) or removes it. Removing only ever removes the tombstone, so
    /// a blob a writer re-wrote meanwhile stays; putting back may replace such a copy, which holds
    /// the same bytes.
    pub async fn settle(&self, tombstone: &str, keep: bool) -> std::io::Result<()> {
        let Some(sha) = valid_tombstone(tombstone) else {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a tombstone"));
        };
        let hidden = trash(&self.root).join(tombstone);
        let result =
            if keep { tokio::fs::rename(&hidden, self.path(sha)).await } else { tokio::fs::remove_file(&hidden).await };
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Takes a hidden blob back when it is wanted while a delete is deciding; true if one was.
    pub(crate) fn unhide(&self, sha256_hex: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(trash(&self.root)) else { return false };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if valid_tombstone(name) == Some(sha256_hex) && std::fs::rename(entry.path(), self.path(sha256_hex)).is_ok()
            {
                return true;
            }
        }
        false
    }

    /// Puts back every blob a delete hid before its process died (at open).
    pub(crate) fn recover_hidden(root: &Path) -> std::io::Result<usize> {
        let entries = match std::fs::read_dir(trash(root)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut restored = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(sha) = name.to_str().and_then(valid_tombstone) else { continue };
            if root.join(sha).exists() {
                std::fs::remove_file(entry.path())?;
            } else {
                std::fs::rename(entry.path(), root.join(sha))?;
                restored += 1;
            }
        }
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::{CodeStorage, ZipLimits};

    fn zip() -> Bytes {
        use std::io::Write as _;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("f.py", zip::write::SimpleFileOptions::default()).expect("start");
        w.write_all(b"x = 1\n").expect("write");
        Bytes::from(w.finish().expect("finish").into_inner())
    }

    #[tokio::test]
    async fn hide_then_keep_or_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = CodeStorage::open(dir.path(), ZipLimits::default()).expect("open");
        let stored = storage.put_zip(zip()).await.expect("put");
        let sha = stored.sha256_hex.as_str();

        let tomb = storage.hide(sha).await.expect("hide").expect("was there");
        assert!(storage.hide(sha).await.expect("hide twice").is_none(), "a second delete finds nothing");
        assert!(!storage.path(sha).exists());
        storage.settle(&tomb, true).await.expect("keep");
        assert!(storage.path(sha).exists(), "kept blobs come back");

        let tomb = storage.hide(sha).await.expect("hide").expect("was there");
        storage.ensure(sha, &zip()).await.expect("a writer re-writes it meanwhile");
        storage.settle(&tomb, false).await.expect("drop");
        assert!(storage.path(sha).exists(), "settling never removes a blob a writer put back");

        let tomb = storage.hide(sha).await.expect("hide").expect("was there");
        storage.settle(&tomb, false).await.expect("drop");
        assert!(!storage.path(sha).exists());
        assert!(storage.settle("../../etc/passwd", true).await.is_err(), "tombstones are names, not paths");
    }

    /// Every interleaving of a delete (metadata already said "unreferenced") with a CreateFunction
    /// of the same package in another account: whenever the new reference is committed, the blob
    /// is there at the end. The old delete (remove the file outright) loses it in some of them.
    #[tokio::test]
    async fn no_interleaving_with_a_new_reference_loses_the_blob() {
        // Writer: 0 put_zip, 1 commit the reference, 2 ensure. Deleter: 0 hide, 1 check, 2 settle.
        let mut orders = Vec::new();
        for mask in 0u32..64 {
            if mask.count_ones() == 3 {
                orders.push((0..6).map(|i| mask & (1 << i) != 0).collect::<Vec<bool>>());
            }
        }
        assert_eq!(orders.len(), 20);
        let mut naive_losses = 0;
        for order in &orders {
            for naive in [false, true] {
                let dir = tempfile::tempdir().expect("tempdir");
                let storage = CodeStorage::open(dir.path(), ZipLimits::default()).expect("open");
                let sha = storage.put_zip(zip()).await.expect("the blob the deleted function used").sha256_hex;
                let (mut w, mut d) = (0, 0);
                let (mut referenced, mut tomb, mut keep) = (false, None, false);
                for &writer_step in order {
                    if writer_step {
                        match w {
                            0 => drop(storage.put_zip(zip()).await.expect("put")),
                            1 => referenced = true,
                            _ => storage.ensure(&sha, &zip()).await.expect("ensure"),
                        }
                        w += 1;
                    } else {
                        match (naive, d) {
                            (true, 0) => drop(tokio::fs::remove_file(storage.path(&sha)).await),
                            (true, _) => {}
                            (false, 0) => tomb = storage.hide(&sha).await.expect("hide"),
                            (false, 1) => keep = referenced,
                            (false, _) => {
                                if let Some(t) = &tomb {
                                    storage.settle(t, keep).await.expect("settle");
                                }
                            }
                        }
                        d += 1;
                    }
                }
                let present = storage.path(&sha).exists();
                if naive {
                    naive_losses += usize::from(!present);
                } else {
                    assert!(present, "order {order:?} lost a referenced blob");
                }
            }
        }
        assert!(naive_losses > 0, "the old delete loses the blob in some interleaving");
    }

    #[tokio::test]
    async fn readers_and_restarts_take_hidden_blobs_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = CodeStorage::open(dir.path(), ZipLimits::default()).expect("open");
        let sha = storage.put_zip(zip()).await.expect("put").sha256_hex;
        storage.hide(&sha).await.expect("hide").expect("was there");
        assert!(storage.read(&sha).await.is_ok(), "a reader takes it back");

        storage.hide(&sha).await.expect("hide").expect("was there");
        let reopened = CodeStorage::open(dir.path(), ZipLimits::default()).expect("reopen after a crash");
        assert!(reopened.path(&sha).exists(), "a tombstone left by a crash is put back");
    }
}
