//! Symlinks of an unpacked package, judged on the real tree rather than by their text.
//!
//! A lexical check (count `..` against the link's depth) is fooled as soon as one link leads
//! through another: with `d -> .`, the link `e -> d/d/../..` looks like it stays at the root, but
//! `d` resolves to the root itself, so the kernel walks two levels above it. This module resolves
//! every path component as the kernel does, following chains of links and links in parent
//! directories, and treats a target as escaping if any step of the walk leaves the root.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The kernel's limit on links followed in one lookup (`MAXSYMLINKS`); more is treated as escaping.
const MAX_HOPS: usize = 40;

/// Whether the path `rel` below `root`, followed as the kernel would (through every symlink on the
/// way, the last one included), stays inside `root` at every step. Absolute link targets leave it.
/// A component that does not exist is walked lexically: the kernel would stop there, so this
/// only ever refuses more than needed.
pub fn stays_inside(root: &Path, rel: &Path) -> std::io::Result<bool> {
    let mut queue: VecDeque<OsString> = VecDeque::new();
    for comp in rel.components() {
        match comp {
            Component::Normal(c) => queue.push_back(c.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => queue.push_back("..".into()),
            Component::RootDir | Component::Prefix(_) => return Ok(false),
        }
    }
    let mut at: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(name) = queue.pop_front() {
        if name == ".." {
            if at.pop().is_none() {
                return Ok(false);
            }
            continue;
        }
        at.push(name);
        let here: PathBuf = at.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let meta = match std::fs::symlink_metadata(&here) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        hops += 1;
        if hops > MAX_HOPS {
            return Ok(false);
        }
        let target = std::fs::read_link(&here)?;
        at.pop();
        let mut parts = Vec::new();
        for comp in target.components() {
            match comp {
                Component::Normal(c) => parts.push(c.to_owned()),
                Component::CurDir => {}
                Component::ParentDir => parts.push("..".into()),
                Component::RootDir | Component::Prefix(_) => return Ok(false),
            }
        }
        for part in parts.into_iter().rev() {
            queue.push_front(part);
        }
    }
    Ok(true)
}

/// Every symlink below `root`, relative to it (links are not followed).
fn links_below(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        for entry in std::fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let child = rel.join(entry.file_name());
            if kind.is_symlink() {
                out.push(child);
            } else if kind.is_dir() {
                dirs.push(child);
            }
        }
    }
    Ok(out)
}

/// Removes every symlink below `root` whose target leaves it (see [`stays_inside`]); returns them.
/// Removing a link can only make paths through it dangle, yet the check runs again until nothing
/// changes, so no verdict rests on a link that was removed after it.
pub fn drop_escaping_links(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dropped = Vec::new();
    loop {
        let mut changed = false;
        for link in links_below(root)? {
            if !stays_inside(root, &link)? {
                std::fs::remove_file(root.join(&link))?;
                dropped.push(link);
                changed = true;
            }
        }
        if !changed {
            return Ok(dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// The check exec-host's extraction relied on: `..` counted against the link's depth.
    fn lexically_inside(link: &Path, target: &Path) -> bool {
        let mut depth = link.components().count() as i64 - 1;
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

    fn tree(links: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("pkg");
        std::fs::create_dir_all(root.join("a/b")).expect("dirs");
        std::fs::write(root.join("a/b/file"), b"x").expect("file");
        for (at, to) in links {
            symlink(to, root.join(at)).expect("symlink");
        }
        dir
    }

    #[test]
    fn links_through_links_are_followed() {
        // (link, target, escapes): each escaping one passes the lexical check.
        let hostile = [
            ("e", "d/d/../..", vec![("d", ".")]),
            ("a/x", "up/..", vec![("a/up", "..")]),
            ("r", "q/..", vec![("a/up", ".."), ("q", "a/up")]),
            ("a/b/deep", "../../loop/..", vec![("loop", "a/b/../..")]),
        ];
        for (link, target, others) in hostile {
            let mut all = others.clone();
            all.push((link, target));
            let dir = tree(&all);
            let root = dir.path().join("pkg");
            assert!(lexically_inside(Path::new(link), Path::new(target)), "{link} -> {target} fools the lexical check");
            assert!(!stays_inside(&root, Path::new(link)).expect("resolve"), "{link} -> {target} escapes");
            let dropped = drop_escaping_links(&root).expect("drop");
            assert!(dropped.contains(&PathBuf::from(link)), "{dropped:?}");
            assert!(std::fs::symlink_metadata(root.join(link)).is_err(), "{link} removed");
            for (other, _) in others {
                assert!(std::fs::symlink_metadata(root.join(other)).is_ok(), "{other} stays inside and is kept");
            }
            assert!(std::fs::read_dir(dir.path()).expect("outside").count() == 1, "nothing outside touched");
        }
    }

    #[test]
    fn links_that_stay_inside_are_kept() {
        let dir = tree(&[
            ("a/b/sibling", "file"),
            ("a/up", ".."),
            ("to_file", "a/b/file"),
            ("via_up", "a/up/a/b/file"),
            ("dangling", "nope/x"),
            ("self_loop", "self_loop"),
            ("abs", "/etc/passwd"),
        ]);
        let root = dir.path().join("pkg");
        for link in ["a/b/sibling", "a/up", "to_file", "via_up", "dangling"] {
            assert!(stays_inside(&root, Path::new(link)).expect("resolve"), "{link}");
        }
        assert!(!stays_inside(&root, Path::new("self_loop")).expect("resolve"), "a loop is refused");
        assert!(!stays_inside(&root, Path::new("abs")).expect("resolve"), "absolute targets leave the package");
        let mut dropped = drop_escaping_links(&root).expect("drop");
        dropped.sort();
        assert_eq!(dropped, vec![PathBuf::from("abs"), PathBuf::from("self_loop")]);
        assert_eq!(std::fs::read(root.join("via_up")).expect("read through links"), b"x");
    }
}
