//! Embeds whatever bootstraps exist under `../../runtimes/` (the Python and Node.js runtimes are
//! written separately; a missing directory or file just embeds fewer files).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Collects files below `dir`; at the top level only directories count (the README and tests
/// beside them are not embedded).
fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            collect(&path, base, out);
        } else if ft.is_file()
            && dir != base
            && let Ok(rel) = path.strip_prefix(base)
        {
            out.push((rel.to_string_lossy().into_owned(), path.clone()));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let runtimes = manifest.join("../../runtimes");
    println!("cargo:rerun-if-changed={}", runtimes.display());
    let mut files = Vec::new();
    collect(&runtimes, &runtimes, &mut files);
    files.sort();
    let mut code = String::from(
        "/// Embedded runtime files: (path relative to `runtimes/`, contents).\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let abs = path.canonicalize().unwrap_or_else(|_| path.clone());
        writeln!(code, "    ({rel:?}, include_bytes!({:?})),", abs.display().to_string()).expect("write to String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("runtimes.rs");
    std::fs::write(out, code).expect("write OUT_DIR/runtimes.rs");
}
