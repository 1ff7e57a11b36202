//! What isolation this machine offers, and the recipe for a sandbox's root filesystem.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cgroup::Cgroups;
use crate::ephemeral::TmpMount;
use crate::net::Network;
use crate::spawn::{IdMaps, MountOp, SandboxPlan, cpath};

/// System directories shared read-only with every sandbox (symlinks are recreated as symlinks).
const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"];
/// Host `/etc` entries a runtime may need; never `shadow`, `gshadow` or anything holding secrets.
const ETC_ENTRIES: &[&str] = &[
    "resolv.conf",
    "hosts",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "protocols",
    "services",
    "mime.types",
    "os-release",
    "localtime",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "pki",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
];
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// Isolation features detected at start.
pub(crate) struct Isolation {
    /// Mount/PID/IPC/UTS namespaces, pivot_root and the uid switch work.
    pub(crate) namespaces: bool,
    /// Runtimes start in their own user namespace (see `spawn`).
    pub(crate) user_ns: bool,
    /// Sandbox cgroups (memory at least).
    pub(crate) cgroups: Option<Cgroups>,
    /// Per-sandbox network namespaces with NAT egress; `None` when unavailable (see `missing`).
    pub(crate) network: Option<Network>,
    /// Human-readable notes on what is unavailable.
    pub(crate) missing: Vec<String>,
}

impl Isolation {
    /// Every layer is available (a missing sandbox network makes this false).
    pub(crate) fn complete(&self) -> bool {
        self.namespaces && self.user_ns && self.cgroups.is_some() && self.network.is_some()
    }

    pub(crate) fn available(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.namespaces {
            v.extend([
                "mount_ns",
                "pid_ns",
                "ipc_ns",
                "uts_ns",
                "cgroup_ns",
                "pivot_root",
                "unprivileged_uid",
                "no_new_privs",
                "caps_dropped",
                "rlimits",
                "seccomp",
            ]);
            if self.user_ns {
                v.push("user_ns");
            }
            if self.network.is_some() {
                v.push("net_ns");
            }
        }
        if let Some(cg) = &self.cgroups {
            v.extend(cg.features());
        }
        v
    }
}

/// Paths and ids one sandbox is built from.
pub(crate) struct RootSpec<'a> {
    pub(crate) root: &'a Path,
    pub(crate) code_dir: &'a Path,
    pub(crate) runtime_dir: &'a Path,
    /// `Config::runtime_sdk_dir`.
    pub(crate) sdk_dir: Option<&'a Path>,
    pub(crate) tmp: TmpMount<'a>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Run the runtime in its own user namespace (see `spawn`).
    pub(crate) user_ns: bool,
}

/// The steps that assemble `/` for a sandbox. With `premounted`, the function-independent part
/// ([`base_ops`]) is already mounted on `spec.root` in the mount namespace the runtime will
/// inherit (a spare shell's: see `spare`), and only the sandbox's own steps remain; with
/// `replace_tmp` too, the spare's `/tmp` is swapped for `spec.tmp` (another size).
pub(crate) fn plan(spec: &RootSpec<'_>, premounted: bool, replace_tmp: bool) -> anyhow::Result<SandboxPlan> {
    let root = spec.root;
    let at = |rel: &str| cpath(&root.join(rel));
    let base = if premounted { Vec::new() } else { base_ops(root, spec.runtime_dir, spec.sdk_dir, &spec.tmp)? };
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nsbx_user{uid}:x:{uid}:{gid}::/tmp:/sbin/nologin\n",
        uid = spec.uid,
        gid = spec.gid
    );
    let group = format!("root:x:0:\nsbx_user{uid}:x:{gid}:\n", uid = spec.uid, gid = spec.gid);
    let mut ops = vec![
        MountOp::WriteFile(at("etc/passwd")?, passwd.into_bytes()),
        MountOp::WriteFile(at("etc/group")?, group.into_bytes()),
        MountOp::Proc { dst: at("proc")? },
    ];
    ops.extend(hidden_bind(root, spec.code_dir, "var/task")?);
    if premounted && replace_tmp {
        ops.push(MountOp::Unmount(at("tmp")?));
        ops.extend(tmp_ops(root, &spec.tmp)?);
    }
    Ok(SandboxPlan {
        root: cpath(root)?,
        base,
        premounted,
        ops,
        workdir: c"/var/task".to_owned(),
        hostname: c"sandbox".to_owned(),
        uid: spec.uid,
        gid: spec.gid,
        nofile: 1024,
        nproc: 1024,
        netns: None,
        seccomp: Some(crate::seccomp::Filter::sandbox()),
        user_ns: spec.user_ns.then(|| IdMaps::identity(spec.uid, spec.gid)),
    })
}

/// The function-independent steps: system directories, `/etc`, `/dev`, `/tmp`, `/var/runtime`,
/// the runtime SDKs and the mount points the sandbox's own steps use.
pub(crate) fn base_ops(
    root: &Path,
    runtime_dir: &Path,
    sdk_dir: Option<&Path>,
    tmp: &TmpMount<'_>,
) -> anyhow::Result<Vec<MountOp>> {
    let at = |rel: &str| cpath(&root.join(rel));
    let mut ops = Vec::new();
    for d in SYSTEM_DIRS {
        let host = Path::new("/").join(d);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host).with_context(|| format!("read link {}", host.display()))?;
            ops.push(MountOp::Symlink { target: cpath(&target)?, link: at(d)? });
        } else if meta.is_dir() {
            ops.push(MountOp::Mkdir(at(d)?));
            ops.push(MountOp::Bind { src: cpath(&host)?, dst: at(d)?, readonly: true, dev: false });
        }
    }
    ops.push(MountOp::Mkdir(at("etc")?));
    for e in ETC_ENTRIES {
        let host = Path::new("/etc").join(e);
        let Ok(meta) = std::fs::metadata(&host) else {
            continue;
        };
        let dst = at(&format!("etc/{e}"))?;
        if meta.is_dir() {
            ops.push(MountOp::Mkdir(dst.clone()));
        } else if meta.is_file() {
            ops.push(MountOp::Touch(dst.clone()));
        } else {
            continue;
        }
        ops.push(MountOp::Bind { src: cpath(&host)?, dst, readonly: true, dev: false });
    }
    // Debian's JDKs keep their configuration (java.security, jvm.cfg) under /etc/java-<N>-openjdk,
    // linked from the JDK directory: without it the JVM cannot start.
    let mut jdk_conf: Vec<String> = std::fs::read_dir("/etc")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    jdk_conf.retain(|n| n.starts_with("java-") && n.ends_with("-openjdk"));
    jdk_conf.sort();
    for e in &jdk_conf {
        let host = Path::new("/etc").join(e);
        if !host.is_dir() {
            continue;
        }
        let dst = at(&format!("etc/{e}"))?;
        ops.push(MountOp::Mkdir(dst.clone()));
        ops.push(MountOp::Bind { src: cpath(&host)?, dst, readonly: true, dev: false });
    }
    ops.push(MountOp::Mkdir(at("dev")?));
    ops.push(MountOp::Tmpfs { dst: at("dev")?, data: c"size=64k,mode=755".to_owned() });
    for d in DEVICES {
        let host = Path::new("/dev").join(d);
        if !host.exists() {
            continue;
        }
        ops.push(MountOp::Touch(at(&format!("dev/{d}"))?));
        ops.push(MountOp::Bind { src: cpath(&host)?, dst: at(&format!("dev/{d}"))?, readonly: false, dev: true });
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink { target: cpath(Path::new(target))?, link: at(&format!("dev/{name}"))? });
    }
    ops.push(MountOp::Mkdir(at("proc")?));
    ops.push(MountOp::Mkdir(at("tmp")?));
    ops.extend(tmp_ops(root, tmp)?);
    ops.push(MountOp::Mkdir(at("opt")?));
    ops.push(MountOp::Mkdir(at("var")?));
    ops.push(MountOp::Mkdir(at("var/task")?));
    ops.push(MountOp::Mkdir(at("var/runtime")?));
    ops.extend(hidden_bind(root, runtime_dir, "var/runtime")?);
    ops.extend(sdk_ops(root, sdk_dir)?);
    Ok(ops)
}

/// Mounts the runtime SDK directory at `/var/sdk`. The Python runtime puts `/var/sdk/python` on
/// `sys.path` after the task root. Node.js looks for a bare specifier (`require` and `import`
/// alike) in the `node_modules` directories of the importing file's ancestors, so the function's
/// own `/var/task/node_modules` comes first and `/var/node_modules` (a link to the SDK's) second.
fn sdk_ops(root: &Path, sdk_dir: Option<&Path>) -> anyhow::Result<Vec<MountOp>> {
    let Some(sdk) = sdk_dir.filter(|d| d.is_dir()) else {
        // Functions importing boto3 or @aws-sdk then fail: say why once, in the host's log.
        static WARNED: std::sync::Once = std::sync::Once::new();
        const HINT: &str = "functions get no boto3 / AWS SDK for JavaScript (scripts/install-runtime-sdks.sh)";
        WARNED.call_once(|| match sdk_dir {
            Some(d) => tracing::warn!(dir = %d.display(), "runtime SDK directory missing: {HINT}"),
            None => tracing::warn!("no runtime SDK directory: {HINT}"),
        });
        return Ok(Vec::new());
    };
    let mut ops = vec![MountOp::Mkdir(cpath(&root.join(SDK_MOUNT))?)];
    ops.extend(hidden_bind(root, sdk, SDK_MOUNT)?);
    if sdk.join("nodejs/node_modules").is_dir() {
        ops.push(MountOp::Symlink {
            target: c"sdk/nodejs/node_modules".to_owned(),
            link: cpath(&root.join("var/node_modules"))?,
        });
    }
    Ok(ops)
}

/// Mounts `/tmp`: the sandbox's own disk volume, or a tmpfs of the same size.
fn tmp_ops(root: &Path, tmp: &TmpMount<'_>) -> anyhow::Result<Vec<MountOp>> {
    let dst = cpath(&root.join("tmp"))?;
    Ok(vec![match tmp {
        TmpMount::Disk(v) => {
            MountOp::Disk { dev: v.dev.clone(), dst, lost_found: cpath(&root.join("tmp/lost+found"))? }
        }
        TmpMount::Tmpfs { size_mb } => {
            let data = std::ffi::CString::new(format!("size={size_mb}m,mode=1777")).context("tmpfs options")?;
            MountOp::Tmpfs { dst, data }
        }
    }])
}

/// Mounts host directory `src` read-only on `root/dst` without revealing its host path: a bind
/// mount's entry in `/proc/self/mountinfo` names the directory's path within its filesystem (the
/// data dir), an overlay mounted from a relative staging name shows only that name. The staging
/// directories live in `/dev`'s tmpfs: removed while the overlay holds them, they would keep the
/// root tmpfs from being remounted read-only (EBUSY). The empty layer stays (an overlay cannot
/// list a directory whose layer was removed); the bind's mount point goes.
fn hidden_bind(root: &Path, src: &Path, dst: &str) -> anyhow::Result<Vec<MountOp>> {
    let dev = root.join("dev");
    let (stage, empty) = (cpath(&dev.join(".t"))?, cpath(&dev.join(".e"))?);
    Ok(vec![
        MountOp::Mkdir(stage.clone()),
        MountOp::Bind { src: cpath(src)?, dst: stage.clone(), readonly: true, dev: false },
        MountOp::Mkdir(empty.clone()),
        MountOp::Overlay { cwd: cpath(&dev)?, lower: c".t".to_owned(), dst: cpath(&root.join(dst))? },
        MountOp::Unmount(stage.clone()),
        MountOp::Rmdir(stage),
    ])
}

/// Probes namespaces (and, given `network`, a sandbox network; with `user_ns`, a user namespace)
/// by starting `/bin/true` in a throw-away sandbox with the seccomp filter.
pub(crate) async fn probe_namespaces(
    work: &Path,
    runtime_dir: &Path,
    network: Option<&Network>,
    user_ns: bool,
) -> Result<(), String> {
    if !crate::spawn::is_root() {
        return Err("not running as root: namespaces, pivot_root and uid switching need root".into());
    }
    let base = work.join(format!("probe-{}", uuid::Uuid::new_v4().simple()));
    let root = base.join("root");
    let code = base.join("code");
    let result = async {
        std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
        std::fs::create_dir_all(&code).map_err(|e| format!("create {}: {e}", code.display()))?;
        let tmp = TmpMount::Tmpfs { size_mb: 1 };
        let spec =
            RootSpec { root: &root, code_dir: &code, runtime_dir, sdk_dir: None, tmp, uid: 9999, gid: 9999, user_ns };
        let mut plan = plan(&spec, false, false).map_err(|e| format!("{e:#}"))?;
        let cmd = vec!["/bin/true".to_string()];
        let network = network.cloned();
        let (spawned, net) = tokio::task::spawn_blocking(move || {
            let net = network.map(|n| n.create_sandbox()).transpose()?;
            plan.netns = net.as_ref().map(|n| std::os::fd::AsRawFd::as_raw_fd(&n.ns));
            crate::spawn::spawn(&cmd, &[], Some(plan), &[], None).map(|s| (s, net))
        })
        .await
        .map_err(|e| format!("join: {e}"))?
        .map_err(|e| format!("{e:#}"))?;
        let mut child = spawned.child;
        let status = child.wait().await.map_err(|e| format!("wait: {e}"))?;
        if let Some(net) = net {
            let _ = tokio::task::spawn_blocking(move || crate::net::delete_link(&net.host_if)).await;
        }
        if status.success() { Ok(()) } else { Err(format!("probe sandbox exited with {status}")) }
    }
    .await;
    let _ = std::fs::remove_dir_all(&base);
    result
}

/// Where the runtime SDK directory (`Config::runtime_sdk_dir`) appears in a sandbox.
pub(crate) const SDK_MOUNT: &str = "var/sdk";

/// The SDK directory found without configuration: `LAMINA_RUNTIME_SDK_DIR`, else the
/// `runtime-sdks` directory of the cargo target directory holding this binary, else
/// `./target/runtime-sdks` (where `scripts/install-runtime-sdks.sh` installs by default).
/// Test binaries live one level deeper (`target/debug/deps`), so tests see the SDKs only when
/// they ask for them.
pub(crate) fn default_runtime_sdk_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LAMINA_RUNTIME_SDK_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let beside_binary = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join("runtime-sdks")));
    let in_cwd = std::env::current_dir().ok().map(|d| d.join("target/runtime-sdks"));
    beside_binary.into_iter().chain(in_cwd).find(|d| d.is_dir())
}

/// Serde form of an optional path: `""` for none, so that the field still appears in a
/// serialised config (the config file's `[exec_host]` table may only name fields that do).
pub(crate) mod optional_path {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.as_deref().map(|p| p.to_string_lossy()).unwrap_or_default())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        Ok((!s.is_empty()).then(|| PathBuf::from(s)))
    }
}

/// Directory for sandbox roots.
pub(crate) fn sandboxes_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sandboxes")
}
