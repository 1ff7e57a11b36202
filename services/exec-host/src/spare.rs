//! Spare sandbox shells: the function-independent parts of a sandbox, prepared in the background
//! so that a cold start only claims one.
//!
//! A spare is a parked thread that has `unshare`d a new network namespace (veth pair, addresses,
//! Runtime API listener: see `net`), on cgroup v1 moved itself into a fresh, empty sandbox
//! cgroup, and `unshare`d a mount namespace in which it mounted the function-independent part of a
//! sandbox root (`isolation::base_ops`: ~60 mount calls), with a `/tmp` volume of the default
//! `EphemeralStorage` (see `ephemeral`: formatting it is the slowest step, ~5 ms, and a function
//! of another size replaces it on its cold start). On a cold start the sandbox's limits are
//! written, then the thread forks the runtime, which inherits the namespaces and the cgroups, and
//! ends; the runtime's side only mounts what is its own (code, `/proc`, `/etc/passwd`). This takes the two slowest
//! function-independent steps off the cold path: creating the network (~1.5 ms) and the cgroup
//! migration of the new process, which waits for an RCU grace period (0 to 25 ms, ~12 ms typical).
//! While parked, the thread is the only task in the cgroups; it never runs code other than ours.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use crate::cgroup::{Cgroups, SandboxCgroup};
use crate::ephemeral::{Backing, Ephemeral, TmpMount};
use crate::net::{Network, SandboxNet};

/// How many spares are kept ready.
const SPARES: usize = 2;

/// Work handed to a spare's thread: it runs there, inside the spare's namespace and cgroups.
type Job = Box<dyn FnOnce() + Send>;

/// One prepared sandbox shell.
pub(crate) struct Spare {
    /// The sandbox's cgroups, without limits yet.
    pub(crate) cgroup: Option<SandboxCgroup>,
    /// The thread has joined `cgroup` (v1): children it forks start there.
    pub(crate) thread_in_cgroup: bool,
    /// The network namespace the thread lives in.
    pub(crate) net: Option<SandboxNet>,
    /// The sandbox root, premounted in the thread's mount namespace (removed with an unused spare).
    pub(crate) root: Option<PathBuf>,
    /// Size of the premounted `/tmp` (MB).
    pub(crate) tmp_mb: u64,
    jobs: mpsc::Sender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spare {
    /// Runs `job` on the spare's thread (which then ends) and returns its result.
    pub(crate) async fn run<T: Send + 'static>(
        mut self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.jobs.send(Box::new(move || {
            let _ = tx.send(job());
        }));
        anyhow::ensure!(sent.is_ok(), "spare sandbox thread is gone");
        let out = rx.await.map_err(|_| anyhow::anyhow!("spare sandbox thread panicked"))?;
        // The thread ends right after the job; the cgroup's kill/remove cope with the moment in
        // between (they skip this process and retry).
        self.thread.take();
        Ok(out)
    }
}

impl Drop for Spare {
    /// An unused spare: ends the thread, then removes the cgroups (briefly blocking).
    fn drop(&mut self) {
        let (jobs, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.jobs, jobs));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(cg) = self.cgroup.take() {
            cg.remove_now();
        }
        // The mounts went with the thread's namespace: only the empty directory is left.
        if let Some(root) = self.root.take() {
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// Where spares premount sandbox roots, and what goes in them.
#[derive(Clone)]
pub(crate) struct RootBase {
    pub(crate) sandboxes_dir: PathBuf,
    pub(crate) runtime_dir: PathBuf,
    /// `Config::runtime_sdk_dir`.
    pub(crate) sdk_dir: Option<PathBuf>,
    /// Size of the spares' `/tmp` (the default `EphemeralStorage`).
    pub(crate) tmp_size_mb: u64,
    pub(crate) ephemeral: Arc<Ephemeral>,
}

/// The spare shells of one host.
pub(crate) struct Spares {
    ready: Mutex<VecDeque<Spare>>,
    filling: AtomicBool,
    closed: AtomicBool,
    network: Option<Network>,
    cgroups: Option<Cgroups>,
    root: RootBase,
}

impl Spares {
    /// For a host with working namespaces (the root is always worth premounting).
    pub(crate) fn new(network: Option<Network>, cgroups: Option<Cgroups>, root: RootBase) -> Arc<Spares> {
        Arc::new(Spares {
            ready: Mutex::new(VecDeque::new()),
            filling: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            network,
            cgroups,
            root,
        })
    }

    /// Takes a ready spare. The caller calls [`Spares::refill`] once its cold start is over:
    /// preparing a replacement (a network namespace, ~60 mounts) while the runtime starts would
    /// compete with it for the CPU and the kernel's mount lock.
    pub(crate) fn claim(&self) -> Option<Spare> {
        self.ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop_front()
    }

    /// Tops the set up to `SPARES` in the background (one filler at a time).
    pub(crate) fn refill(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) || self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            while !this.closed.load(Ordering::Acquire)
                && this.ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() < SPARES
            {
                match this.prepare() {
                    Ok(s) => this.ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_back(s),
                    Err(e) => {
                        tracing::debug!("prepare spare sandbox: {e:#}");
                        break;
                    }
                }
            }
            this.filling.store(false, Ordering::Release);
            if this.closed.load(Ordering::Acquire) {
                this.discard_all();
            }
        });
    }

    /// Stops refilling and discards the ready spares (blocking).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.discard_all();
    }

    fn discard_all(&self) {
        let all: Vec<Spare> = self.ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..).collect();
        drop(all);
    }

    fn prepare(&self) -> anyhow::Result<Spare> {
        let name = format!("sbx-s-{}", uuid::Uuid::new_v4().simple());
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (network, cgroups, cg_name) = (self.network.clone(), self.cgroups.clone(), name.clone());
        let root = self.root.sandboxes_dir.join(&name);
        std::fs::create_dir(&root).map_err(|e| anyhow::anyhow!("create {}: {e}", root.display()))?;
        let tmp_mb = self.root.tmp_size_mb;
        // Formatted here, before the thread joins the sandbox's cgroups and namespaces: mkfs is a
        // process of the host's, not the sandbox's. The thread closes it once mounted.
        let volume = match self.root.ephemeral.backing() {
            Backing::Disk => match self.root.ephemeral.prepare(tmp_mb) {
                Ok(v) => Some(v),
                Err(e) => {
                    let _ = std::fs::remove_dir(&root);
                    return Err(e.context("prepare /tmp"));
                }
            },
            Backing::Memory => None,
        };
        let tmp = match &volume {
            Some(v) => TmpMount::Disk(v),
            None => TmpMount::Tmpfs { size_mb: tmp_mb },
        };
        let base = crate::isolation::base_ops(&root, &self.root.runtime_dir, self.root.sdk_dir.as_deref(), &tmp)
            .and_then(|ops| Ok((crate::spawn::cpath(&root)?, ops)));
        let (root_c, base) = match base {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_dir(&root);
                return Err(e);
            }
        };
        let thread = std::thread::Builder::new().name("lamina-spare".into()).spawn(move || {
            let setup = (|| -> anyhow::Result<(Option<SandboxNet>, Option<SandboxCgroup>, bool)> {
                let cgroup = cgroups.as_ref().map(|c| c.create_dirs(&cg_name)).transpose()?;
                // Changes this thread's network namespace for good; the thread ends after its job.
                let net = match network.as_ref().map(Network::create_in_new_ns).transpose() {
                    Ok(n) => n,
                    Err(e) => {
                        if let Some(cg) = cgroup {
                            cg.remove_now();
                        }
                        return Err(e);
                    }
                };
                let joined = match cgroup.as_ref().map(SandboxCgroup::join_thread).transpose() {
                    Ok(j) => j.unwrap_or(false),
                    Err(e) => {
                        // Possibly half-joined: remove the cgroups once this thread has ended.
                        if let Some(cg) = cgroup {
                            std::thread::spawn(move || cg.remove_now());
                        }
                        return Err(e);
                    }
                };
                let premounted = crate::spawn::premount(&root_c, &base);
                drop(volume);
                if let Err(e) = premounted {
                    if let Some(cg) = cgroup {
                        std::thread::spawn(move || cg.remove_now());
                    }
                    if let Some(n) = net {
                        let _ = crate::net::delete_link(&n.host_if);
                    }
                    return Err(e);
                }
                Ok((net, cgroup, joined))
            })();
            let ok = setup.is_ok();
            if ready_tx.send(setup).is_err() || !ok {
                return;
            }
            if let Ok(job) = rx.recv() {
                job();
            }
        })?;
        let out = match ready_rx.recv() {
            Ok(Ok((net, cgroup, thread_in_cgroup))) => {
                return Ok(Spare {
                    cgroup,
                    thread_in_cgroup,
                    net,
                    root: Some(root),
                    tmp_mb,
                    jobs,
                    thread: Some(thread),
                });
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(anyhow::anyhow!("spare sandbox thread panicked")),
        };
        let _ = thread.join();
        let _ = std::fs::remove_dir(&root);
        out
    }
}
