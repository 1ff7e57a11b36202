//! CPU accounting of a server's process tree: the server itself and every descendant (the
//! `lamina <service>` children of `lamina cluster`, the runtimes in sandboxes), grouped by what
//! they are, so a figure can say where the CPU of one invocation goes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// CPU time of a process so far, all its threads (first field of each task's `schedstat`, in ns).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(Duration::from_nanos(total))
}

/// Parent pid from `/proc/<pid>/stat` (the field after the state, past the `(comm)`).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// What a process is: `lamina <subcommand>` for Lamina's own processes, else its `comm`.
fn label(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> =
        cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned();
    match args.first() {
        Some(argv0) if argv0.rsplit('/').next() == Some("lamina") => {
            format!("lamina {}", args.get(1).map(String::as_str).unwrap_or(""))
        }
        _ => comm,
    }
}

/// `root` and its descendants that are alive now.
fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some(ppid) = parent(pid)
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// CPU time per process of a tree at one moment.
pub struct Snapshot {
    root: u32,
    per_pid: HashMap<u32, (String, Duration)>,
    own: Duration,
}

impl Snapshot {
    pub fn take(root: u32) -> Self {
        let per_pid =
            tree(root).into_iter().filter_map(|pid| cpu_time(pid).ok().map(|cpu| (pid, (label(pid), cpu)))).collect();
        Self { root, per_pid, own: cpu_time(std::process::id()).unwrap_or_default() }
    }

    /// Prints CPU per invocation since `self`: the root process, each kind of descendant (with how
    /// many processes of that kind did any work), the whole tree, and this load generator.
    /// A process that ended in between is not counted.
    pub fn report_since(&self, invocations: usize) {
        self.report_per(invocations, "invocation");
    }

    /// [`report_since`](Self::report_since) per `count` units of `unit` (e.g. drained records).
    pub fn report_per(&self, count: usize, unit: &str) {
        let now = Snapshot::take(self.root);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / count.max(1) as f64;
        let mut groups: BTreeMap<String, (Duration, usize, usize)> = BTreeMap::new();
        let mut total = Duration::ZERO;
        for (pid, (label, cpu)) in &now.per_pid {
            let before = self.per_pid.get(pid).map_or(Duration::ZERO, |(_, d)| *d);
            let used = cpu.saturating_sub(before);
            total += used;
            let key = if *pid == self.root { format!("{label} (pid {pid})") } else { label.clone() };
            let g = groups.entry(key).or_default();
            g.0 += used;
            g.1 += 1;
            // "Busy": it used more than 1 us per invocation.
            g.2 += usize::from(per(used) > 1.0);
        }
        let cpu_of = |s: &Snapshot| s.per_pid.get(&self.root).map_or(Duration::ZERO, |(_, d)| *d);
        let root_used = cpu_of(&now).saturating_sub(cpu_of(self));
        println!("Server CPU per {unit}: {:.0} us", per(root_used));
        for (label, (used, count, busy)) in &groups {
            println!("  CPU per {unit}, {label}: {:.1} us ({count} processes, {busy} busy)", per(*used));
        }
        println!("  CPU per {unit}, whole server tree: {:.0} us", per(total));
        println!("  CPU per {unit}, this load generator: {:.0} us", per(now.own.saturating_sub(self.own)));
    }
}
