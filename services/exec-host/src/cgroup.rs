//! Per-sandbox cgroups (v1 or v2, detected at start): memory limit, pids limit, CPU share/quota,
//! peak memory, OOM detection, freezing idle sandboxes and killing the whole tree.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Memory that buys one full vCPU (as in Lambda).
const MB_PER_VCPU: u64 = 1769;
/// Quota accounting period. Long enough that a runtime's start-up (~40 ms of CPU for Python)
/// fits into one period's quota plus burst at 128 MB (36 ms + 36 ms), short enough that a
/// CPU-bound function stalls at most half a second. Measured cold start of the Python test
/// bootstrap at 128 MB: 100 ms period, no burst: ~480 ms; 100 ms + burst: ~320 ms; 500 ms +
/// burst: ~50 ms (the same as without a quota).
const CPU_PERIOD_US: u64 = 500_000;
/// Processes + threads per sandbox (LIM: 1,024).
pub(crate) const PIDS_MAX: u64 = 1024;

/// Which cgroup hierarchy the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// Parent cgroups under which sandbox cgroups are created.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    pub(crate) version: Version,
    /// v1: per-controller parent directories; v2: only `memory` is set (the unified parent).
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    /// v1: the freezer controller's parent; v2: the unified parent when `cgroup.freeze` exists.
    freezer: Option<PathBuf>,
}

/// The cgroup(s) of one sandbox.
#[derive(Debug)]
pub(crate) struct SandboxCgroup {
    version: Version,
    /// Every directory created for this sandbox (one per v1 controller, one for v2).
    dirs: Vec<PathBuf>,
    /// The directory holding the memory controller files.
    memory_dir: PathBuf,
    /// v1: the cpu controller's directory.
    cpu_dir: Option<PathBuf>,
    has_pids: bool,
    has_cpu: bool,
    /// The directory whose freezer freezes the sandbox (v1 `freezer.state`, v2 `cgroup.freeze`).
    freezer_dir: Option<PathBuf>,
    /// The peak-usage file, opened once and re-read with `pread` after each invocation.
    peak: std::sync::OnceLock<Option<std::fs::File>>,
}

impl Cgroups {
    /// Finds the hierarchy and prepares `lamina` parents below this process's own cgroups.
    /// Returns what is available plus human-readable notes on what is missing.
    pub(crate) fn detect() -> (Option<Cgroups>, Vec<String>) {
        let mut missing = Vec::new();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let unified = Path::new(CGROUP_ROOT).join("cgroup.controllers");
        let result = if unified.exists() { detect_v2(&own, &mut missing) } else { detect_v1(&own, &mut missing) };
        match result {
            Ok(cg) => (Some(cg), missing),
            Err(e) => {
                missing.push(format!("cgroups: {e:#}"));
                (None, missing)
            }
        }
    }

    /// Features present, for health().
    pub(crate) fn features(&self) -> Vec<&'static str> {
        let mut v = vec!["cgroup_memory"];
        if self.pids.is_some() {
            v.push("cgroup_pids");
        }
        if self.freezer.is_some() {
            v.push("cgroup_freezer");
        }
        if let Some(cpu) = &self.cpu {
            v.push("cgroup_cpu");
            let burst = match self.version {
                Version::V1 => "cpu.cfs_burst_us",
                Version::V2 => "cpu.max.burst",
            };
            if cpu.join(burst).exists() {
                v.push("cgroup_cpu_burst");
            }
        }
        v
    }

    /// Creates the cgroup(s) of one sandbox and applies its limits.
    pub(crate) fn create(&self, name: &str, memory_mb: u64, cpu_quota: bool) -> anyhow::Result<SandboxCgroup> {
        let cg = self.create_dirs(name)?;
        cg.apply_limits(memory_mb, cpu_quota)?;
        Ok(cg)
    }

    /// Creates the (empty, unlimited) cgroup directories of one sandbox; `apply_limits` must run
    /// before any sandbox process starts in them.
    pub(crate) fn create_dirs(&self, name: &str) -> anyhow::Result<SandboxCgroup> {
        let mem_parent = self.memory.as_ref().context("no memory cgroup")?;
        let memory_dir = mem_parent.join(name);
        let mut cg = SandboxCgroup {
            version: self.version,
            dirs: Vec::new(),
            memory_dir: memory_dir.clone(),
            cpu_dir: None,
            has_pids: self.pids.is_some(),
            has_cpu: self.cpu.is_some(),
            freezer_dir: self.freezer.as_ref().map(|f| f.join(name)),
            peak: std::sync::OnceLock::new(),
        };
        let result = (|| {
            mkdir(&memory_dir)?;
            cg.dirs.push(memory_dir.clone());
            if self.version == Version::V1 {
                // dirs[1] is the pids directory when there is one (see `apply_limits`).
                for parent in [&self.pids, &self.cpu, &self.freezer].into_iter().flatten() {
                    let d = parent.join(name);
                    mkdir(&d)?;
                    cg.dirs.push(d);
                }
                cg.cpu_dir = self.cpu.as_ref().map(|c| c.join(name));
            }
            anyhow::Ok(())
        })();
        if let Err(e) = result {
            for d in cg.dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e);
        }
        Ok(cg)
    }
}

impl SandboxCgroup {
    /// Sets the memory, pids and CPU limits of a sandbox of `memory_mb`.
    pub(crate) fn apply_limits(&self, memory_mb: u64, cpu_quota: bool) -> anyhow::Result<()> {
        let bytes = memory_mb * 1024 * 1024;
        let memory_dir = &self.memory_dir;
        let quota = (CPU_PERIOD_US * memory_mb / MB_PER_VCPU).max(1000);
        match self.version {
            Version::V2 => {
                write(&memory_dir.join("memory.max"), &bytes.to_string())?;
                let _ = write(&memory_dir.join("memory.swap.max"), "0");
                let _ = write(&memory_dir.join("memory.oom.group"), "1");
                if self.has_pids {
                    write(&memory_dir.join("pids.max"), &PIDS_MAX.to_string())?;
                }
                if self.has_cpu {
                    let weight = (100 * memory_mb / MB_PER_VCPU).clamp(1, 10_000);
                    write(&memory_dir.join("cpu.weight"), &weight.to_string())?;
                    if cpu_quota {
                        // The burst lets a sandbox bank up to one period's unused quota (the
                        // kernel's maximum), so short spikes such as start-up run unthrottled.
                        write(&memory_dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                        let burst = memory_dir.join("cpu.max.burst");
                        if burst.exists() {
                            write(&burst, &quota.to_string())?;
                        }
                    }
                }
            }
            Version::V1 => {
                write(&memory_dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                let memsw = memory_dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &bytes.to_string())?;
                }
                let _ = write(&memory_dir.join("memory.swappiness"), "0");
                if self.has_pids
                    && let Some(d) = self.dirs.get(1)
                {
                    write(&d.join("pids.max"), &PIDS_MAX.to_string())?;
                }
                if let Some(d) = &self.cpu_dir {
                    let shares = (1024 * memory_mb / MB_PER_VCPU).max(2);
                    write(&d.join("cpu.shares"), &shares.to_string())?;
                    if cpu_quota {
                        write(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
                        let burst = d.join("cpu.cfs_burst_us");
                        if burst.exists() {
                            write(&burst, &quota.to_string())?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves the calling thread (only it, not the whole process) into the sandbox's cgroups, so
    /// that a process it forks starts there without a migration on the cold-start path (v1 only:
    /// v2 keeps a process's threads together). Returns false on v2.
    pub(crate) fn join_thread(&self) -> anyhow::Result<bool> {
        if self.version != Version::V1 {
            return Ok(false);
        }
        for d in &self.dirs {
            // "0" names the writing thread.
            write(&d.join("tasks"), "0")?;
        }
        Ok(true)
    }
}

impl Cgroups {
    /// Kills and removes sandbox cgroups of host instances whose process is gone.
    pub(crate) async fn remove_stale(&self) {
        // The freezer first (v1): killing there thaws, so the other controllers find no
        // frozen processes waiting for their SIGKILL.
        for parent in [&self.freezer, &self.memory, &self.pids, &self.cpu].into_iter().flatten() {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for inst in entries.flatten() {
                let name = inst.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix('h').and_then(|r| r.split('-').next()) else {
                    continue;
                };
                if Path::new("/proc").join(pid).exists() || !inst.path().is_dir() {
                    continue;
                }
                let Ok(children) = std::fs::read_dir(inst.path()) else {
                    continue;
                };
                for e in children.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        let frozen = e.path().join("freezer.state").exists() || e.path().join("cgroup.freeze").exists();
                        let stale = SandboxCgroup {
                            version: self.version,
                            dirs: vec![e.path()],
                            memory_dir: e.path(),
                            cpu_dir: None,
                            has_pids: false,
                            has_cpu: false,
                            freezer_dir: frozen.then(|| e.path()),
                            peak: std::sync::OnceLock::new(),
                        };
                        stale.kill().await;
                        stale.remove().await;
                    }
                }
                let _ = std::fs::remove_dir(inst.path());
            }
        }
    }

    /// Moves every parent one level down into a directory owned by this host instance
    /// (`h<pid>-<random>`), so several hosts (e.g. tests) share a machine without touching each
    /// other's sandboxes.
    pub(crate) fn instance(&self) -> anyhow::Result<Cgroups> {
        let name = format!("h{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let sub = |p: &Option<PathBuf>| -> anyhow::Result<Option<PathBuf>> {
            let Some(p) = p else { return Ok(None) };
            let d = p.join(&name);
            mkdir(&d)?;
            if self.version == Version::V2 {
                let enabled = std::fs::read_to_string(p.join("cgroup.subtree_control")).unwrap_or_default();
                let enable: Vec<String> = enabled.split_whitespace().map(|c| format!("+{c}")).collect();
                write(&d.join("cgroup.subtree_control"), &enable.join(" "))?;
            }
            Ok(Some(d))
        };
        let memory = sub(&self.memory)?;
        let (pids, cpu, freezer) = if self.version == Version::V2 {
            let m = &memory;
            (self.pids.as_ref().and(m.clone()), self.cpu.as_ref().and(m.clone()), self.freezer.as_ref().and(m.clone()))
        } else {
            (sub(&self.pids)?, sub(&self.cpu)?, sub(&self.freezer)?)
        };
        Ok(Cgroups { version: self.version, memory, pids, cpu, freezer })
    }

    /// Removes this instance's (empty) parent directories.
    pub(crate) fn remove_instance(&self) {
        for d in [&self.memory, &self.pids, &self.cpu, &self.freezer].into_iter().flatten() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl SandboxCgroup {
    /// `cgroup.procs` files the sandbox's first process must join.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Peak memory use of the sandbox in bytes.
    pub(crate) fn peak_bytes(&self) -> u64 {
        let file = match self.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        };
        // Called after every invocation: keep the file open and re-read it from offset 0.
        let peak = self.peak.get_or_init(|| std::fs::File::open(self.memory_dir.join(file)).ok());
        peak.as_ref().and_then(pread_u64).or_else(|| read_u64(&self.memory_dir.join("memory.current"))).unwrap_or(0)
    }

    /// True if the kernel's OOM killer acted in this cgroup.
    pub(crate) fn oom_killed(&self) -> bool {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        let text = std::fs::read_to_string(self.memory_dir.join(file)).unwrap_or_default();
        let kills = text
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if kills > 0 {
            return true;
        }
        self.version == Version::V1 && read_u64(&self.memory_dir.join("memory.failcnt")).unwrap_or(0) > 0
    }

    /// SIGKILLs every process in the sandbox and waits (bounded) until none is left.
    pub(crate) async fn kill(&self) {
        if self.version == Version::V2 && write(&self.memory_dir.join("cgroup.kill"), "1").is_ok() {
            for _ in 0..200 {
                if self.pids().is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        for _ in 0..400 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // Pids come from the kernel's own list; a recycled pid cannot join our cgroup.
                let _ = kill_pid(pid);
            }
            // A frozen task (v1) acts on SIGKILL only once thawed; killed first, it runs no code.
            let _ = self.thaw();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::warn!(cgroup = %self.memory_dir.display(), "processes survived SIGKILL of their cgroup");
    }

    /// True if this sandbox has a freezer.
    pub(crate) fn can_freeze(&self) -> bool {
        self.freezer_dir.is_some()
    }

    /// Starts freezing every process of the sandbox (the kernel completes it asynchronously: see
    /// [`SandboxCgroup::frozen`]). Returns false, freezing nothing, while a thread of this host
    /// process is still in the cgroup (a spare's setup thread, just leaving: v1).
    pub(crate) fn freeze(&self) -> anyhow::Result<bool> {
        let Some(dir) = &self.freezer_dir else { return Ok(false) };
        let own = std::process::id().to_string();
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).context("read cgroup.procs")?;
        if procs.lines().any(|l| l.trim() == own) {
            return Ok(false);
        }
        freeze_dir(self.version, dir, true)?;
        Ok(true)
    }

    /// Thaws the sandbox (a no-op when it is not frozen).
    pub(crate) fn thaw(&self) -> anyhow::Result<()> {
        match &self.freezer_dir {
            Some(dir) => freeze_dir(self.version, dir, false),
            None => Ok(()),
        }
    }

    /// True once every process of the sandbox is frozen.
    pub(crate) fn frozen(&self) -> bool {
        self.freezer_dir.as_deref().is_some_and(|d| is_frozen(self.version, d))
    }

    fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        for d in &self.dirs {
            if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
                out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        out.sort_unstable();
        out.dedup();
        // A spare sandbox's setup thread lives in these cgroups until it has forked the runtime
        // (see `spare`); cgroup.procs then lists this host's own pid, which must never be killed.
        let own = std::process::id() as i32;
        out.retain(|&p| p != own);
        out
    }

    /// `remove` for threads outside the runtime (retries for up to a second).
    pub(crate) fn remove_now(&self) {
        for d in &self.dirs {
            for _ in 0..100 {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }

    /// Removes the cgroup directories (retrying while the last processes exit).
    pub(crate) async fn remove(&self) {
        for d in &self.dirs {
            for attempt in 0..100 {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => {
                        if attempt == 99 {
                            tracing::warn!(cgroup = %d.display(), "remove cgroup: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    }
}

fn kill_pid(pid: i32) -> std::io::Result<()> {
    crate::spawn::kill(pid, libc::SIGKILL)
}

fn detect_v1(own: &str, missing: &mut Vec<String>) -> anyhow::Result<Cgroups> {
    let mut notes = Vec::new();
    let mut path_of = |ctrl: &str| -> Option<PathBuf> {
        let rel = own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let ctrls = parts.next()?;
            let path = parts.next()?;
            ctrls.split(',').any(|c| c == ctrl).then(|| path.to_string())
        })?;
        let mount = Path::new(CGROUP_ROOT).join(ctrl);
        if !mount.exists() {
            return None;
        }
        let parent = mount.join(rel.trim_start_matches('/')).join("lamina");
        match mkdir(&parent) {
            Ok(()) => Some(parent),
            Err(e) => {
                notes.push(format!("cgroup v1 {ctrl}: {e:#}"));
                None
            }
        }
    };
    let memory = path_of("memory");
    let pids = path_of("pids");
    let cpu = path_of("cpu");
    let freezer = path_of("freezer");
    missing.extend(notes);
    let memory = memory.context("cgroup v1 memory controller is not usable")?;
    if pids.is_none() {
        missing.push("cgroup pids controller".into());
    }
    if cpu.is_none() {
        missing.push("cgroup cpu controller".into());
    }
    if freezer.is_none() {
        missing.push("cgroup freezer controller (idle sandboxes keep running)".into());
    }
    Ok(Cgroups { version: Version::V1, memory: Some(memory), pids, cpu, freezer })
}

fn detect_v2(own: &str, missing: &mut Vec<String>) -> anyhow::Result<Cgroups> {
    let rel = own.lines().find_map(|l| l.strip_prefix("0::")).context("no cgroup v2 entry in /proc/self/cgroup")?;
    let own_dir = Path::new(CGROUP_ROOT).join(rel.trim_start_matches('/'));
    let available = std::fs::read_to_string(own_dir.join("cgroup.controllers")).context("read cgroup.controllers")?;
    let has = |c: &str| available.split_whitespace().any(|x| x == c);
    anyhow::ensure!(has("memory"), "memory controller not delegated to {}", own_dir.display());
    // No internal processes: move this process into a leaf `host` child, then delegate controllers.
    let host_leaf = own_dir.join("lamina-host");
    mkdir(&host_leaf)?;
    write(&host_leaf.join("cgroup.procs"), &std::process::id().to_string()).context("move host into leaf cgroup")?;
    let wanted: Vec<&str> = ["memory", "pids", "cpu"].into_iter().filter(|c| has(c)).collect();
    let enable: String = wanted.iter().map(|c| format!("+{c} ")).collect();
    write(&own_dir.join("cgroup.subtree_control"), enable.trim()).context("enable controllers")?;
    let parent = own_dir.join("lamina");
    mkdir(&parent)?;
    write(&parent.join("cgroup.subtree_control"), enable.trim()).context("enable controllers for sandboxes")?;
    let pids = has("pids").then(|| parent.clone());
    let cpu = has("cpu").then(|| parent.clone());
    if pids.is_none() {
        missing.push("cgroup pids controller".into());
    }
    if cpu.is_none() {
        missing.push("cgroup cpu controller".into());
    }
    // The v2 freezer is built into every non-root cgroup (kernel 5.2+), not a controller.
    let freezer = parent.join("cgroup.freeze").exists().then(|| parent.clone());
    if freezer.is_none() {
        missing.push("cgroup.freeze (kernel before 5.2: idle sandboxes keep running)".into());
    }
    Ok(Cgroups { version: Version::V2, memory: Some(parent), pids, cpu, freezer })
}

/// Writes the freezer state of one cgroup directory: v1 `freezer.state` FROZEN/THAWED, v2
/// `cgroup.freeze` 1/0.
fn freeze_dir(version: Version, dir: &Path, frozen: bool) -> anyhow::Result<()> {
    match (version, frozen) {
        (Version::V1, true) => write(&dir.join("freezer.state"), "FROZEN"),
        (Version::V1, false) => write(&dir.join("freezer.state"), "THAWED"),
        (Version::V2, true) => write(&dir.join("cgroup.freeze"), "1"),
        (Version::V2, false) => write(&dir.join("cgroup.freeze"), "0"),
    }
}

/// v1: `freezer.state` reads FROZEN (FREEZING while in progress); v2: `cgroup.events` says
/// `frozen 1`.
fn is_frozen(version: Version, dir: &Path) -> bool {
    match version {
        Version::V1 => std::fs::read_to_string(dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN"),
        Version::V2 => {
            std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
        }
    }
}

fn mkdir(p: &Path) -> anyhow::Result<()> {
    match std::fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("create {}", p.display())),
    }
}

fn write(p: &Path, v: &str) -> anyhow::Result<()> {
    std::fs::write(p, v).with_context(|| format!("write {v:?} to {}", p.display()))
}

fn pread_u64(f: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 32];
    let n = f.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroupfs directory of one sandbox.
    fn fake(version: Version, files: &[(&str, &str)]) -> (tempfile::TempDir, SandboxCgroup) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("sbx");
        std::fs::create_dir(&dir).expect("create cgroup dir");
        for (name, contents) in files {
            std::fs::write(dir.join(name), contents).expect("write cgroup file");
        }
        let cg = SandboxCgroup {
            version,
            dirs: vec![dir.clone()],
            memory_dir: dir.clone(),
            cpu_dir: None,
            has_pids: false,
            has_cpu: false,
            freezer_dir: Some(dir),
            peak: std::sync::OnceLock::new(),
        };
        (tmp, cg)
    }

    #[test]
    fn v2_freeze_writes_cgroup_freeze_and_reads_events() {
        let (tmp, cg) = fake(
            Version::V2,
            &[("cgroup.procs", "4242\n"), ("cgroup.freeze", "0"), ("cgroup.events", "populated 1\nfrozen 0\n")],
        );
        let dir = tmp.path().join("sbx");
        assert!(cg.can_freeze());
        assert!(cg.freeze().expect("freeze"), "no host thread in the cgroup: frozen");
        assert_eq!(std::fs::read_to_string(dir.join("cgroup.freeze")).expect("read"), "1");
        assert!(!cg.frozen(), "the kernel has not reported frozen yet");
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").expect("write events");
        assert!(cg.frozen());
        cg.thaw().expect("thaw");
        assert_eq!(std::fs::read_to_string(dir.join("cgroup.freeze")).expect("read"), "0");
    }

    #[test]
    fn v1_freeze_writes_freezer_state() {
        let (tmp, cg) = fake(Version::V1, &[("cgroup.procs", ""), ("freezer.state", "THAWED\n")]);
        let dir = tmp.path().join("sbx");
        assert!(cg.freeze().expect("freeze"));
        assert_eq!(std::fs::read_to_string(dir.join("freezer.state")).expect("read"), "FROZEN");
        assert!(cg.frozen());
        cg.thaw().expect("thaw");
        assert_eq!(std::fs::read_to_string(dir.join("freezer.state")).expect("read"), "THAWED");
    }

    #[test]
    fn never_freezes_a_cgroup_holding_this_process() {
        let own = format!("{}\n", std::process::id());
        let (tmp, cg) = fake(Version::V2, &[("cgroup.procs", own.as_str()), ("cgroup.freeze", "0")]);
        assert!(!cg.freeze().expect("freeze"), "a spare's setup thread is still in the cgroup");
        assert_eq!(std::fs::read_to_string(tmp.path().join("sbx/cgroup.freeze")).expect("read"), "0");
    }
}
