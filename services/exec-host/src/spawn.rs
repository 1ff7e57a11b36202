//! Starting a runtime process inside a sandbox: cgroup join, namespaces, the new root,
//! privilege drop. Everything runs in the forked child before `exec`, so it uses only raw
//! syscalls on data prepared before the fork (the host is multi-threaded).
//!
//! Before the fork the caller may have created a network namespace (see `net`): A joins it first.
//! C installs the seccomp filter as its very last step.
//!
//! Process tree: host ─ A (joins cgroups, unshares, waits) ─ B (pid 1 of the new PID namespace:
//! builds the root, reaps orphans) ─ C (in its own user namespace, where only the sandbox's uid
//! and gid are mapped, identically: host root does not exist there; drops privileges, execs the
//! runtime). B writes C's id maps while C waits on a pipe. When C exits B
//! exits with C's status (which kills everything left in the namespace) and A mirrors it, so the
//! host's `wait` on A reports the runtime's status: exit code, or 128+signal.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;

/// One step of building the sandbox root (paths are absolute host paths below the new root).
#[derive(Debug)]
pub(crate) enum MountOp {
    /// `mkdir` with mode 0755 (an existing directory is fine).
    Mkdir(CString),
    /// Creates an empty file (a bind-mount target).
    Touch(CString),
    /// Creates a file with the given contents, mode 0644.
    WriteFile(CString, Vec<u8>),
    /// `symlink(target, link)`.
    Symlink { target: CString, link: CString },
    /// Bind mount, then remount with `nosuid` (+ `nodev` unless `dev`) and optionally read-only.
    Bind { src: CString, dst: CString, readonly: bool, dev: bool },
    /// A tmpfs with the given mount data (e.g. `size=512m,mode=1777`).
    Tmpfs { dst: CString, data: CString },
    /// A fresh procfs for the new PID namespace.
    Proc { dst: CString },
    /// The ext4 filesystem on a prepared block device (a sandbox's `/tmp`: see `ephemeral`),
    /// made world-writable and sticky, its `lost+found` removed.
    Disk { dev: CString, dst: CString, lost_found: CString },
    /// Detaches whatever is mounted on the path (a spare's `/tmp` of another size).
    Unmount(CString),
    /// A read-only overlay of `lower` (a directory below `cwd`, named relative to it) and the
    /// empty directory `empty` (overlayfs needs two layers without an upper one). Mounted with
    /// `cwd` as working directory, so `/proc/self/mountinfo` shows only the relative names, not
    /// the host path of `lower`'s source, as a bind mount's root field would.
    Overlay { cwd: CString, lower: CString, dst: CString },
    /// `rmdir`.
    Rmdir(CString),
}

/// Everything the child needs to build the sandbox, prepared before the fork.
#[derive(Debug)]
pub(crate) struct SandboxPlan {
    /// Host path of the (empty) directory that becomes `/`.
    pub(crate) root: CString,
    /// Function-independent steps run after mounting a small tmpfs on `root` (see [`premount`]).
    pub(crate) base: Vec<MountOp>,
    /// `base` is already mounted, in the mount namespace the child inherits (and copies).
    pub(crate) premounted: bool,
    /// The sandbox's own steps, run after `base`.
    pub(crate) ops: Vec<MountOp>,
    /// Working directory inside the sandbox.
    pub(crate) workdir: CString,
    /// Hostname in the new UTS namespace.
    pub(crate) hostname: CString,
    /// Unprivileged user and group the runtime runs as.
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// RLIMIT_NOFILE and RLIMIT_NPROC.
    pub(crate) nofile: u64,
    pub(crate) nproc: u64,
    /// Network namespace to join (an open `/proc/<tid>/ns/net`); `None` shares the host's.
    pub(crate) netns: Option<RawFd>,
    /// Seccomp filter installed last, just before `exec`.
    pub(crate) seccomp: Option<crate::seccomp::Filter>,
    /// Start the runtime in a new user namespace with these `uid_map` / `gid_map` contents.
    pub(crate) user_ns: Option<IdMaps>,
}

/// The id maps of a sandbox's user namespace, formatted before the fork.
#[derive(Debug)]
pub(crate) struct IdMaps {
    pub(crate) uid_map: Vec<u8>,
    pub(crate) gid_map: Vec<u8>,
}

impl IdMaps {
    /// Maps the sandbox's uid and gid to themselves, and nothing else.
    pub(crate) fn identity(uid: u32, gid: u32) -> Self {
        Self { uid_map: format!("{uid} {uid} 1\n").into_bytes(), gid_map: format!("{gid} {gid} 1\n").into_bytes() }
    }
}

impl MountOp {
    fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            MountOp::Mkdir(p) => format!("mkdir {}", s(p)),
            MountOp::Touch(p) => format!("create {}", s(p)),
            MountOp::WriteFile(p, _) => format!("write {}", s(p)),
            MountOp::Symlink { link, .. } => format!("symlink {}", s(link)),
            MountOp::Bind { src, dst, .. } => format!("bind {} on {}", s(src), s(dst)),
            MountOp::Tmpfs { dst, .. } => format!("tmpfs on {}", s(dst)),
            MountOp::Proc { dst } => format!("proc on {}", s(dst)),
            MountOp::Disk { dev, dst, .. } => format!("mount {} on {}", s(dev), s(dst)),
            MountOp::Unmount(p) => format!("unmount {}", s(p)),
            MountOp::Overlay { lower, dst, .. } => format!("overlay of {} on {}", s(lower), s(dst)),
            MountOp::Rmdir(p) => format!("rmdir {}", s(p)),
        }
    }
}

/// A started runtime: the host-side child (process A) and the read ends of its output pipes.
pub(crate) struct Spawned {
    pub(crate) child: tokio::process::Child,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

// Step numbers reported through the diagnostics pipe when the child fails.
const STEP_CGROUP: u32 = 1;
const STEP_UNSHARE: u32 = 2;
const STEP_FORK: u32 = 3;
const STEP_ROOT_TMPFS: u32 = 5;
const STEP_ROOT_RO: u32 = 6;
const STEP_PIVOT: u32 = 7;
const STEP_CHDIR: u32 = 8;
const STEP_HOSTNAME: u32 = 9;
const STEP_RLIMIT: u32 = 10;
const STEP_CAPS: u32 = 11;
const STEP_SETID: u32 = 12;
const STEP_NNP: u32 = 13;
const STEP_NETNS: u32 = 14;
const STEP_SECCOMP: u32 = 15;
const STEP_USERNS: u32 = 16;
const STEP_OPS: u32 = 100;
const STEP_BASE_OPS: u32 = 1000;

fn step_name(step: u32, plan_ops: &[String]) -> String {
    match step {
        STEP_CGROUP => "join cgroup".into(),
        STEP_UNSHARE => "unshare namespaces".into(),
        STEP_FORK => "fork".into(),
        STEP_ROOT_TMPFS => "make mounts private and mount the root tmpfs".into(),
        STEP_ROOT_RO => "remount root read-only".into(),
        STEP_PIVOT => "pivot_root".into(),
        STEP_CHDIR => "chdir".into(),
        STEP_HOSTNAME => "sethostname".into(),
        STEP_RLIMIT => "setrlimit".into(),
        STEP_CAPS => "drop capabilities".into(),
        STEP_SETID => "switch user".into(),
        STEP_NNP => "no_new_privs".into(),
        STEP_NETNS => "join network namespace".into(),
        STEP_SECCOMP => "install seccomp filter".into(),
        STEP_USERNS => "create user namespace".into(),
        s if s >= STEP_OPS => plan_ops.get((s - STEP_OPS) as usize).cloned().unwrap_or_else(|| format!("step {s}")),
        s => format!("step {s}"),
    }
}

/// Starts `command` with exactly `env`. With a plan, the process runs isolated as described in
/// the module docs; `cgroup_procs` are the `cgroup.procs` files it joins first. Blocks until the
/// runtime has been exec'd (call from `spawn_blocking`).
pub(crate) fn spawn(
    command: &[String],
    env: &[(String, String)],
    plan: Option<SandboxPlan>,
    cgroup_procs: &[PathBuf],
    fallback_cwd: Option<&Path>,
) -> anyhow::Result<Spawned> {
    let (program, args) = command.split_first().context("empty runtime command")?;
    let mut cg_fds = Vec::new();
    for p in cgroup_procs {
        let f = std::fs::OpenOptions::new().write(true).open(p).with_context(|| format!("open {}", p.display()))?;
        cg_fds.push(OwnedFd::from(f));
    }
    let (diag_r, diag_w) = pipe_cloexec().context("create diagnostics pipe")?;
    // Indexed by step - STEP_OPS: the sandbox's own steps, then (from STEP_BASE_OPS) the base.
    let mut op_names: Vec<String> = Vec::new();
    if let Some(p) = &plan {
        op_names = p.ops.iter().map(MountOp::describe).collect();
        op_names.resize((STEP_BASE_OPS - STEP_OPS) as usize, String::new());
        op_names.extend(p.base.iter().map(MountOp::describe));
    }

    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(cwd) = fallback_cwd {
        cmd.current_dir(cwd);
    }
    if plan.is_none() {
        // Without a PID namespace the tree is killed through its process group.
        cmd.process_group(0);
    }
    let raw_cg: Vec<RawFd> = cg_fds.iter().map(|f| f.as_raw_fd()).collect();
    let diag = diag_w.as_raw_fd();
    // SAFETY: the closure runs in the forked child of a multi-threaded process. It only issues raw
    // syscalls (no allocation, no locks) on data owned by the closure, all prepared before the fork.
    unsafe {
        cmd.pre_exec(move || child_setup(&raw_cg, diag, plan.as_ref()));
    }
    let spawned = cmd.spawn();
    drop(diag_w);
    drop(cg_fds);
    let diag_msg = read_diag(diag_r);
    let mut child = match (spawned, diag_msg) {
        (Ok(child), None) => child,
        (Ok(mut child), Some((step, errno))) => {
            let _ = child.start_kill();
            anyhow::bail!(
                "sandbox setup failed at {}: {}",
                step_name(step, &op_names),
                io::Error::from_raw_os_error(errno)
            );
        }
        (Err(e), Some((step, errno))) => anyhow::bail!(
            "sandbox setup failed at {}: {} ({e})",
            step_name(step, &op_names),
            io::Error::from_raw_os_error(errno)
        ),
        (Err(e), None) => return Err(e).with_context(|| format!("exec {program}")),
    };
    let stdout = child.stdout.take().context("child stdout")?.into_owned_fd()?;
    let stderr = child.stderr.take().context("child stderr")?.into_owned_fd()?;
    Ok(Spawned { child, stdout, stderr })
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads a (step, errno) pair written by a failing child; `None` once every copy of the write
/// end is closed without a report (the runtime was exec'd).
fn read_diag(fd: OwnedFd) -> Option<(u32, i32)> {
    use std::io::Read;
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    if buf.len() < 8 {
        return None;
    }
    let step = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some((step, errno))
}

/// Sends `sig` to `pid`.
pub(crate) fn kill(pid: i32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// True when the host runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A warning when the host pipes core dumps to a helper: the kernel runs a piped `core_pattern`
/// helper (as root, in the host's namespaces) even for a process whose RLIMIT_CORE is 0, passing
/// the limit as `%c` for it to honour. A runtime is dumpable again after `execve`, so a crashing
/// function reaches that helper (docs/security.md).
pub(crate) fn core_pattern_note() -> Option<String> {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").ok()?;
    let pattern = pattern.trim();
    pattern.starts_with('|').then(|| {
        format!(
            "kernel.core_pattern pipes crashes to `{pattern}`, which runs for crashing sandboxes too \
             (RLIMIT_CORE 0 is passed as %c); set kernel.core_pattern=core to keep it off"
        )
    })
}

/// Converts a path to a C string (paths cannot hold NUL bytes except through bad input).
pub(crate) fn cpath(p: &Path) -> anyhow::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("path {} contains NUL", p.display()))
}

// ---- code below runs in the forked children: raw syscalls only ----

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// Reports a failed step to the host and returns the matching error.
fn report(diag: RawFd, step: u32) -> io::Error {
    let e = errno();
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&step.to_ne_bytes());
    buf[4..].copy_from_slice(&e.to_ne_bytes());
    // SAFETY: writes 8 bytes from a stack buffer to a fd we own; failure is ignored on purpose.
    unsafe {
        libc::write(diag, buf.as_ptr().cast(), buf.len());
    }
    io::Error::from_raw_os_error(e)
}

/// Fails the current (non-exec'ing) process: report and `_exit`.
fn die(diag: RawFd, step: u32) -> ! {
    report(diag, step);
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(126) }
}

/// fork(2) without glibc's atfork handlers (which may take locks held by threads that do not
/// exist in this child).
fn raw_fork() -> libc::pid_t {
    // SAFETY: clone with only SIGCHLD and no new stack behaves like fork(2).
    unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0 as libc::c_long, 0, 0, 0) as libc::pid_t }
}

/// Waits for `pid` (or, as pid 1, for anyone until `pid` exits) and `_exit`s with its status.
fn wait_and_mirror(pid: libc::pid_t, reap_all: bool) -> ! {
    // SAFETY: close_range on our own fd table; nothing in this process uses fds any more.
    unsafe {
        libc::syscall(libc::SYS_close_range, 0 as libc::c_uint, libc::c_uint::MAX, 0 as libc::c_uint);
    }
    let target = if reap_all { -1 } else { pid };
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes into our stack variable.
        let r = unsafe { libc::waitpid(target, &mut status, 0) };
        if r == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                continue;
            };
            // SAFETY: _exit never returns and is async-signal-safe.
            unsafe { libc::_exit(code) }
        }
        if r < 0 && errno() != libc::EINTR {
            // SAFETY: as above.
            unsafe { libc::_exit(125) }
        }
    }
}

fn child_setup(cg_fds: &[RawFd], diag: RawFd, plan: Option<&SandboxPlan>) -> io::Result<()> {
    // No core dumps, from the reapers or the runtime: a hard limit of 0 that the runtime (without
    // CAP_SYS_RESOURCE) cannot raise, so a crash never writes a core file to the host's
    // core_pattern path. The reapers (A, B: root, never exec) are also made non-dumpable, which
    // keeps a piped core_pattern helper from ever running for them; for the runtime, execve resets
    // dumpability to 1 (its uid equals its euid), so it cannot be kept off there (docs/security.md).
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit/prctl with a stack struct and integer arguments.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
            return Err(report(diag, STEP_RLIMIT));
        }
        if plan.is_some() {
            libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0);
        }
    }
    for &fd in cg_fds {
        // SAFETY: writes a 1-byte static buffer; "0" means "the writing process".
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(report(diag, STEP_CGROUP));
        }
    }
    let Some(plan) = plan else { return Ok(()) };
    if let Some(ns) = plan.netns {
        // SAFETY: setns(2) on an fd the plan holds open; changes only this process.
        if unsafe { libc::setns(ns, libc::CLONE_NEWNET) } != 0 {
            return Err(report(diag, STEP_NETNS));
        }
    }
    // Drop every inherited descriptor but stdio and the diagnostics pipe now: this process and B
    // never exec, and a copy of a descriptor another host thread has open for writing (a package
    // being unzipped) would make exec'ing that file fail with ETXTBSY until B is done.
    // SAFETY: close_range on our own fd table; the fds still needed are 0-2 and `diag`.
    unsafe {
        if diag > 3 {
            libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, (diag - 1) as libc::c_uint, 0 as libc::c_uint);
        }
        libc::syscall(libc::SYS_close_range, (diag + 1) as libc::c_uint, libc::c_uint::MAX, 0 as libc::c_uint);
    }
    // A mount namespace of its own even over a premounted root: pivot_root would otherwise also
    // move the root of the spare thread that shares the premounted namespace.
    let flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWCGROUP;
    // SAFETY: unshare(2) only changes this process's namespaces.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(report(diag, STEP_UNSHARE));
    }
    let b = raw_fork();
    if b < 0 {
        return Err(report(diag, STEP_FORK));
    }
    if b > 0 {
        wait_and_mirror(b, false);
    }
    // Process B: pid 1 of the new namespace.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    build_root(plan, diag);
    let c = match &plan.user_ns {
        Some(maps) => fork_into_user_ns(maps, diag),
        None => raw_fork(),
    };
    if c < 0 {
        die(diag, STEP_FORK);
    }
    if c > 0 {
        wait_and_mirror(c, true);
    }
    // Process C: becomes the runtime.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    drop_privileges(plan, diag)
}

/// Forks C into a new user namespace and writes its id maps (B has the privilege to, C does
/// not); C goes on only once they are in place. Returns like fork: C's pid in B, 0 in C.
fn fork_into_user_ns(maps: &IdMaps, diag: RawFd) -> libc::pid_t {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into our stack array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        die(diag, STEP_USERNS);
    }
    let [ready_r, ready_w] = fds;
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long;
    // SAFETY: clone without CLONE_VM and without a new stack behaves like fork(2).
    let c = unsafe { libc::syscall(libc::SYS_clone, flags, 0 as libc::c_long, 0, 0, 0) as libc::pid_t };
    if c < 0 {
        die(diag, STEP_USERNS);
    }
    if c == 0 {
        let mut byte = 0u8;
        // SAFETY: close/read on the pipe created above, into a stack byte.
        let n = unsafe {
            libc::close(ready_w);
            let n = libc::read(ready_r, (&raw mut byte).cast(), 1);
            libc::close(ready_r);
            n
        };
        if n != 1 {
            // B failed (and reported why) or died.
            // SAFETY: _exit never returns and is async-signal-safe.
            unsafe { libc::_exit(126) }
        }
        return 0;
    }
    // SAFETY: closes our copy of the read end.
    unsafe { libc::close(ready_r) };
    if !write_id_map(c, b"uid_map", &maps.uid_map) || !write_id_map(c, b"gid_map", &maps.gid_map) {
        let _ = kill(c, libc::SIGKILL);
        die(diag, STEP_USERNS);
    }
    // SAFETY: one byte from a static buffer to the pipe we own, then close it.
    unsafe {
        libc::write(ready_w, b"1".as_ptr().cast(), 1);
        libc::close(ready_w);
    }
    c
}

/// Writes `/proc/<pid>/<file>`; the path is built on the stack (no allocation after the fork).
fn write_id_map(pid: libc::pid_t, file: &[u8], contents: &[u8]) -> bool {
    let mut path = [0u8; 64];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        path[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    push(b"/proc/");
    let mut digits = [0u8; 10];
    let mut n = pid as u32;
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push(&digits[d..]);
    push(b"/");
    push(file);
    // SAFETY: `path` is NUL-terminated (zero-filled, at most 6 + 10 + 1 + 7 bytes used); the
    // buffer written is owned by the plan.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, contents.as_ptr().cast(), contents.len()) == contents.len() as isize;
        libc::close(fd);
        ok
    }
}

fn mount(
    src: *const libc::c_char,
    dst: &CString,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> bool {
    // SAFETY: all pointers are NUL-terminated strings owned by the plan, or null.
    unsafe { libc::mount(src, dst.as_ptr(), fstype, flags, data.cast()) == 0 }
}

/// Gives the calling thread its own mount namespace holding the function-independent part of a
/// sandbox root at `root` (a spare shell's preparation, off the cold path). Runs on an ordinary
/// thread: a mount namespace, unlike a user namespace, can be unshared by one thread alone.
pub(crate) fn premount(root: &CString, base: &[MountOp]) -> anyhow::Result<()> {
    // SAFETY: unshare(2) only changes this thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(io::Error::last_os_error()).context("unshare mount namespace");
    }
    if let Err(step) = mount_base(root, base) {
        let e = io::Error::last_os_error();
        return Err(e).with_context(|| match step {
            None => "prepare sandbox root".to_owned(),
            Some(i) => base[i].describe(),
        });
    }
    Ok(())
}

/// Private propagation, the root tmpfs, then `base`; `Err(Some(i))` names the failed step.
fn mount_base(root: &CString, base: &[MountOp]) -> Result<(), Option<usize>> {
    let null = std::ptr::null();
    let slash = c"/";
    // SAFETY: mount(2) with static strings; makes every mount in our new namespace private.
    if unsafe { libc::mount(null, slash.as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, null.cast()) } != 0 {
        return Err(None);
    }
    if !mount(
        c"tmpfs".as_ptr(),
        root,
        c"tmpfs".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV,
        c"size=4m,mode=755".as_ptr(),
    ) {
        return Err(None);
    }
    for (i, op) in base.iter().enumerate() {
        if !run_op(op) {
            return Err(Some(i));
        }
    }
    Ok(())
}

fn build_root(plan: &SandboxPlan, diag: RawFd) {
    let null = std::ptr::null();
    if !plan.premounted {
        match mount_base(&plan.root, &plan.base) {
            Ok(()) => {}
            Err(None) => die(diag, STEP_ROOT_TMPFS),
            Err(Some(i)) => die(diag, STEP_BASE_OPS + i as u32),
        }
    }
    for (i, op) in plan.ops.iter().enumerate() {
        if !run_op(op) {
            die(diag, STEP_OPS + i as u32);
        }
    }
    if !mount(null, &plan.root, null, libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV, null) {
        die(diag, STEP_ROOT_RO);
    }
    // SAFETY: chdir/pivot_root/umount2 with NUL-terminated strings owned by the plan or static.
    unsafe {
        if libc::chdir(plan.root.as_ptr()) != 0 {
            die(diag, STEP_PIVOT);
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            die(diag, STEP_PIVOT);
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            die(diag, STEP_PIVOT);
        }
        if libc::chdir(plan.workdir.as_ptr()) != 0 {
            die(diag, STEP_CHDIR);
        }
        if libc::sethostname(plan.hostname.as_ptr(), plan.hostname.as_bytes().len()) != 0 {
            die(diag, STEP_HOSTNAME);
        }
    }
}

fn run_op(op: &MountOp) -> bool {
    let null = std::ptr::null();
    match op {
        // SAFETY: mkdir with a NUL-terminated path owned by the plan.
        MountOp::Mkdir(p) => unsafe { libc::mkdir(p.as_ptr(), 0o755) == 0 || errno() == libc::EEXIST },
        MountOp::Touch(p) | MountOp::WriteFile(p, _) => {
            // SAFETY: open/write/close on a path and buffer owned by the plan.
            unsafe {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC, 0o644);
                if fd < 0 {
                    return false;
                }
                let mut ok = true;
                if let MountOp::WriteFile(_, data) = op {
                    ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
                }
                libc::close(fd);
                ok
            }
        }
        // SAFETY: symlink with NUL-terminated strings owned by the plan.
        MountOp::Symlink { target, link } => unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) == 0 },
        MountOp::Bind { src, dst, readonly, dev } => {
            if !mount(src.as_ptr(), dst, null, libc::MS_BIND | libc::MS_REC, null) {
                return false;
            }
            let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID;
            if !dev {
                flags |= libc::MS_NODEV;
            }
            if *readonly {
                flags |= libc::MS_RDONLY;
            }
            mount(null, dst, null, flags, null)
        }
        MountOp::Tmpfs { dst, data } => {
            mount(c"tmpfs".as_ptr(), dst, c"tmpfs".as_ptr(), libc::MS_NOSUID | libc::MS_NODEV, data.as_ptr())
        }
        MountOp::Disk { dev, dst, lost_found } => {
            if !mount(dev.as_ptr(), dst, c"ext4".as_ptr(), libc::MS_NOSUID | libc::MS_NODEV, std::ptr::null()) {
                return false;
            }
            // SAFETY: chmod/rmdir with NUL-terminated paths owned by the plan.
            unsafe {
                libc::rmdir(lost_found.as_ptr());
                libc::chmod(dst.as_ptr(), 0o1777) == 0
            }
        }
        // SAFETY: umount2 with a NUL-terminated path owned by the plan.
        MountOp::Unmount(p) => unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) == 0 },
        MountOp::Overlay { cwd, lower, dst } => {
            let mut data = [0u8; 64];
            let prefix = b"lowerdir=";
            let suffix = b":.e";
            let name = lower.as_bytes();
            let len = prefix.len() + name.len() + suffix.len();
            if len >= data.len() {
                return false;
            }
            data[..prefix.len()].copy_from_slice(prefix);
            data[prefix.len()..prefix.len() + name.len()].copy_from_slice(name);
            data[prefix.len() + name.len()..len].copy_from_slice(suffix);
            // SAFETY: chdir with a NUL-terminated path owned by the plan.
            if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
                return false;
            }
            let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
            // `data` is NUL-terminated: zero-filled and `len` < its size.
            mount(c"none".as_ptr(), dst, c"overlay".as_ptr(), flags, data.as_ptr().cast())
        }
        // SAFETY: rmdir with a NUL-terminated path owned by the plan.
        MountOp::Rmdir(p) => unsafe { libc::rmdir(p.as_ptr()) == 0 },
        MountOp::Proc { dst } => {
            // hidepid=2: the runtime sees only its own uid's processes, not the root-owned reaper
            // (pid 1), whose command line is the server's own.
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            mount(c"proc".as_ptr(), dst, c"proc".as_ptr(), flags, c"hidepid=2".as_ptr().cast())
        }
    }
}

fn drop_privileges(plan: &SandboxPlan, diag: RawFd) -> io::Result<()> {
    // SAFETY: every call below is a raw syscall on integers or static strings; raw syscalls
    // (rather than glibc's setuid wrappers) act on this thread only, which is all there is.
    unsafe {
        // Prefer the runtime over the (tiny) reaper processes when the cgroup runs out of memory.
        let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, b"1000".as_ptr().cast(), 4);
            libc::close(fd);
        }
        let nofile = libc::rlimit { rlim_cur: plan.nofile, rlim_max: plan.nofile };
        let nproc = libc::rlimit { rlim_cur: plan.nproc, rlim_max: plan.nproc };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &nofile) != 0 || libc::setrlimit(libc::RLIMIT_NPROC, &nproc) != 0 {
            return Err(report(diag, STEP_RLIMIT));
        }
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 && errno() != libc::EINVAL {
                return Err(report(diag, STEP_CAPS));
            }
        }
        if libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, std::ptr::null::<libc::gid_t>()) != 0
            || libc::syscall(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0
            || libc::syscall(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0
        {
            return Err(report(diag, STEP_SETID));
        }
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0);
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(report(diag, STEP_NNP));
        }
    }
    // Last: from here on the denied system calls fail, including those a setup step would need.
    if let Some(filter) = &plan.seccomp
        && filter.apply().is_err()
    {
        return Err(report(diag, STEP_SECCOMP));
    }
    Ok(())
}
