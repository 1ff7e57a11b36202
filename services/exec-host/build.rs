//! Embeds whatever bootstraps exist under `../../runtimes/` (the Python and Node.js runtimes are
//! written separately; a missing directory or file just embeds fewer files).
//!
//! The Java runtime is the exception: its sources (`runtimes/java/src`) are not embedded but
//! compiled with the JDK's `javac` + `jar` into `$OUT_DIR/lamina-java-runtime.jar`, which is embedded
//! as `java/lamina-java-runtime.jar`. Without a JDK the build only warns and embeds no jar (the host
//! then offers no `java*` runtime: `LAMINA_JAVA_RUNTIME_JAR` stays unset).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Java sources, relative to `runtimes/`; compiled, never embedded.
const JAVA_SRC: &str = "java/src";
/// Where the compiled runtime lands below `/var/runtime`.
const JAVA_JAR: &str = "java/lamina-java-runtime.jar";

/// Collects files below `dir`; at the top level only directories count (the README and tests
/// beside them are not embedded), and the Java sources are skipped.
fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            // Bytecode left by running the bootstrap tests is not part of the runtime.
            if path == base.join(JAVA_SRC) || entry.file_name() == "__pycache__" {
                continue;
            }
            collect(&path, base, out);
        } else if ft.is_file()
            && dir != base
            && let Ok(rel) = path.strip_prefix(base)
        {
            out.push((rel.to_string_lossy().into_owned(), path.clone()));
        }
    }
}

/// All `.java` files below `dir`.
fn java_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            java_sources(&path, out);
        } else if ft.is_file() && path.extension().is_some_and(|e| e == "java") {
            out.push(path);
        }
    }
}

/// A JDK tool from `PATH`, else from `$JAVA_HOME/bin`.
fn jdk_tool(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name));
    let from_home = std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin").join(name));
    from_path.chain(from_home).find(|p| p.is_file())
}

/// Compiles the Java runtime into `$OUT_DIR/lamina-java-runtime.jar`; `None` (with a warning) when
/// there is no JDK or compiling fails.
fn build_java_runtime(runtimes: &Path, out_dir: &Path) -> Option<PathBuf> {
    let src = runtimes.join(JAVA_SRC);
    let mut sources = Vec::new();
    java_sources(&src, &mut sources);
    sources.sort();
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    if sources.is_empty() {
        return None;
    }
    let (Some(javac), Some(jar)) = (jdk_tool("javac"), jdk_tool("jar")) else {
        println!("cargo:warning=javac/jar not found on PATH or in $JAVA_HOME/bin: the java runtime is not built");
        return None;
    };
    let classes = out_dir.join("java-classes");
    let _ = std::fs::remove_dir_all(&classes);
    let jar_path = out_dir.join("lamina-java-runtime.jar");
    let _ = std::fs::remove_file(&jar_path);
    let run = |cmd: &mut Command, what: &str| -> bool {
        match cmd.output() {
            Ok(o) if o.status.success() => true,
            Ok(o) => {
                println!("cargo:warning={what} failed ({}): the java runtime is not built", o.status);
                for line in String::from_utf8_lossy(&o.stderr).lines().chain(String::from_utf8_lossy(&o.stdout).lines())
                {
                    println!("cargo:warning=  {line}");
                }
                false
            }
            Err(e) => {
                println!("cargo:warning=cannot run {what}: {e}: the java runtime is not built");
                false
            }
        }
    };
    let mut javac_cmd = Command::new(&javac);
    javac_cmd.args(["--release", "17", "-encoding", "UTF-8", "-nowarn", "-d"]).arg(&classes).args(&sources);
    if !run(&mut javac_cmd, "javac") {
        return None;
    }
    let mut jar_cmd = Command::new(&jar);
    jar_cmd.arg("--create").arg("--file").arg(&jar_path).arg("-C").arg(&classes).arg(".");
    if !run(&mut jar_cmd, "jar") {
        return None;
    }
    Some(jar_path)
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let runtimes = manifest.join("../../runtimes");
    println!("cargo:rerun-if-changed={}", runtimes.display());
    println!("cargo:rerun-if-env-changed=JAVA_HOME");
    let mut files = Vec::new();
    collect(&runtimes, &runtimes, &mut files);
    if let Some(jar) = build_java_runtime(&runtimes, &out_dir) {
        files.push((JAVA_JAR.to_string(), jar));
        println!("cargo:rustc-env=LAMINA_JAVA_RUNTIME_JAR={JAVA_JAR}");
    }
    files.sort();
    let mut code = String::from(
        "/// Embedded runtime files: (path relative to `runtimes/`, contents).\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in &files {
        if !path.starts_with(&out_dir) {
            // (The jar is rewritten by every run; watching it would rerun the script forever.)
            println!("cargo:rerun-if-changed={}", path.display());
        }
        let abs = path.canonicalize().unwrap_or_else(|_| path.clone());
        writeln!(code, "    ({rel:?}, include_bytes!({:?})),", abs.display().to_string()).expect("write to String");
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("runtimes.rs"), code).expect("write OUT_DIR/runtimes.rs");
}
