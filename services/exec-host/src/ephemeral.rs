//! Sandbox `/tmp` (Lambda's ephemeral storage) on disk, outside the function's memory.
//!
//! Each sandbox gets a fresh ext4 filesystem of `EphemeralStorage.Size` MB: a sparse image file
//! under `<data_dir>/ephemeral`, formatted without a journal (the contents die with the sandbox),
//! attached to a loop device with `LO_FLAGS_AUTOCLEAR` and unlinked at once. The device detaches,
//! and the image's blocks are freed, when the last mount of it goes away, i.e. when the sandbox's
//! mount namespace dies; nothing is left to clean up, even after a crash of the host.
//! A tmpfs (counted against the sandbox's memory) is the fallback where loop devices or
//! `mkfs.ext4` are unavailable; `/health` reports which one is in use.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;
/// Bytes of ext4 per inode: a quarter of mke2fs's default inode tables, so `df` shows nearly the
/// whole size (a 1024 MB `/tmp` still holds 16,384 files).
const BYTES_PER_INODE: &str = "65536";

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// How sandboxes get their `/tmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// A per-sandbox ext4 image on a loop device.
    Disk,
    /// A tmpfs charged to the sandbox's memory cgroup.
    Memory,
}

/// A formatted, attached device holding a sandbox's `/tmp`, until it is mounted. Dropping it
/// unmounted detaches the device (autoclear on last close).
#[derive(Debug)]
pub(crate) struct Volume {
    pub(crate) dev: CString,
    _fd: OwnedFd,
}

/// What a sandbox's `/tmp` is mounted from.
#[derive(Debug)]
pub(crate) enum TmpMount<'a> {
    Disk(&'a Volume),
    Tmpfs { size_mb: u64 },
}

/// The host's ephemeral storage: the backing in use and the budget shared by live sandboxes.
pub(crate) struct Ephemeral {
    dir: PathBuf,
    mkfs: Option<PathBuf>,
    backing: Backing,
    budget_mb: u64,
    used_mb: Mutex<u64>,
    /// Why the disk backing is unavailable.
    pub(crate) note: Option<String>,
}

/// Storage reserved by one sandbox; returned to the budget on drop.
pub(crate) struct Reservation {
    owner: Arc<Ephemeral>,
    mb: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = self.owner.used_mb.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *used = used.saturating_sub(self.mb);
    }
}

impl Ephemeral {
    /// Probes the disk backing under `<data_dir>/ephemeral` (root, loop devices, `mkfs.ext4`).
    /// `budget_mb` 0 means half the space free there now.
    pub(crate) fn detect(data_dir: &Path, budget_mb: u64) -> Arc<Ephemeral> {
        let dir = data_dir.join("ephemeral");
        let budget_mb = if budget_mb > 0 { budget_mb } else { free_mb(data_dir).map(|m| m / 2).unwrap_or(0).max(512) };
        let mut e =
            Ephemeral { dir, mkfs: find_mkfs(), backing: Backing::Disk, budget_mb, used_mb: Mutex::new(0), note: None };
        let probe = (|| {
            anyhow::ensure!(crate::spawn::is_root(), "not running as root");
            anyhow::ensure!(e.mkfs.is_some(), "mkfs.ext4 not found in /usr/sbin or /sbin");
            std::fs::create_dir_all(&e.dir).with_context(|| format!("create {}", e.dir.display()))?;
            // Leftovers of a crashed host: images are unlinked once attached, so these never were.
            if let Ok(entries) = std::fs::read_dir(&e.dir) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            e.prepare(16).map(drop)
        })();
        if let Err(err) = probe {
            e.backing = Backing::Memory;
            e.note = Some(format!("ephemeral storage on disk: {err:#}; /tmp is a tmpfs counted against memory"));
        }
        Arc::new(e)
    }

    pub(crate) fn backing(&self) -> Backing {
        self.backing
    }

    /// (reserved, budget) in MB.
    pub(crate) fn usage(&self) -> (u64, u64) {
        (*self.used_mb.lock().unwrap_or_else(std::sync::PoisonError::into_inner), self.budget_mb)
    }

    /// Reserves `mb` of the host's budget, or `None` when it would be exceeded.
    pub(crate) fn reserve(self: &Arc<Self>, mb: u64) -> Option<Reservation> {
        let mut used = self.used_mb.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *used + mb > self.budget_mb {
            return None;
        }
        *used += mb;
        Some(Reservation { owner: self.clone(), mb })
    }

    /// Formats and attaches a fresh `/tmp` of `size_mb` (blocking: ~5 ms, mostly `mkfs`).
    pub(crate) fn prepare(&self, size_mb: u64) -> anyhow::Result<Volume> {
        let mkfs = self.mkfs.as_ref().context("mkfs.ext4 not found")?;
        let image = self.dir.join(format!("{}.img", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&image)
                .with_context(|| format!("create {}", image.display()))?;
            // ext4's own tables take ~2%: the image is a little larger so that the function can
            // write the whole EphemeralStorage.Size it was promised.
            file.set_len(image_mb(size_mb) * 1024 * 1024).context("size image")?;
            let out = std::process::Command::new(mkfs)
                .args(["-q", "-F", "-t", "ext4", "-O", "^has_journal,^resize_inode", "-m", "0"])
                .args(["-i", BYTES_PER_INODE, "-E", "nodiscard,lazy_itable_init=1"])
                .arg(&image)
                .env_clear()
                .stdin(std::process::Stdio::null())
                .output()
                .context("run mkfs.ext4")?;
            anyhow::ensure!(out.status.success(), "mkfs.ext4 failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            attach(&file)
        })();
        let _ = std::fs::remove_file(&image);
        result
    }
}

/// Attaches `file` to a free loop device.
fn attach(file: &std::fs::File) -> anyhow::Result<Volume> {
    let ctl = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .context("open /dev/loop-control")?;
    let mut last = None;
    // Another process may take the device between GET_FREE and CONFIGURE (EBUSY): try again.
    for _ in 0..16 {
        // SAFETY: ioctl without an argument on a descriptor we own.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("find a free loop device");
        }
        let dev = format!("/dev/loop{n}");
        let Ok(loop_file) = std::fs::OpenOptions::new().read(true).write(true).open(&dev) else {
            last = Some(anyhow::anyhow!("open {dev}"));
            continue;
        };
        let fd = u32::try_from(file.as_raw_fd()).context("image descriptor")?;
        // SAFETY: both structs are plain old data; all-zero is their documented "unset" value.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = fd;
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
        // SAFETY: LOOP_CONFIGURE reads a `struct loop_config` we own for the call's duration.
        let r = unsafe { libc::ioctl(loop_file.as_raw_fd(), LOOP_CONFIGURE, &config as *const LoopConfig) };
        if r == 0 {
            let dev = CString::new(dev).context("device path")?;
            return Ok(Volume { dev, _fd: OwnedFd::from(loop_file) });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(err).with_context(|| format!("attach {dev}"));
        }
        last = Some(anyhow::anyhow!("{dev}: {err}"));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no loop device"))).context("attach a loop device")
}

/// Image size for a `/tmp` of `size_mb` usable megabytes.
fn image_mb(size_mb: u64) -> u64 {
    size_mb + size_mb.div_ceil(40) + 4
}

fn find_mkfs() -> Option<PathBuf> {
    ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", "/usr/sbin/mke2fs", "/sbin/mke2fs"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn free_mb(dir: &Path) -> Option<u64> {
    let c = crate::spawn::cpath(dir).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64 / (1024 * 1024))
}
