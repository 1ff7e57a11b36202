//! Execution hosts announce themselves with heartbeats; routers list them and place invocations.
//!
//! Keys: `{prefix}:host:{id}` holds the host's [`HostInfo`] as JSON and expires after the TTL
//! unless the next heartbeat comes first; `{prefix}:hosts` is the set of host ids, pruned of ids
//! whose key has expired whenever the hosts are listed.

use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context as _;
use redis::Script;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::connection::normalize_prefix;

/// Removes ARGV[i] from the set KEYS[1] if its key KEYS[i + 1] no longer exists. Checked in the
/// script so that a host heartbeating at this moment is not dropped from the set.
static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed = 0
for i, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], id)
  end
end
return removed
",
    )
});

/// What an execution host reports in each heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Unique host id.
    pub id: String,
    /// Address of the host's gRPC server, e.g. `10.0.0.7:7104`.
    pub grpc_addr: String,
    /// Most sandboxes the host runs at once.
    pub capacity_sandboxes: u32,
    /// Memory the host may give to sandboxes, in MB.
    pub memory_budget_mb: u64,
    /// Memory its sandboxes hold now, in MB.
    pub memory_used_mb: u64,
    /// Invocations running now.
    pub in_flight: u32,
    /// Keys (`account/function/version/revision`) for which an idle sandbox is ready.
    pub warm: Vec<String>,
    /// Runtimes the host can start, e.g. `python3.12`.
    pub runtimes: Vec<String>,
    /// The host is shutting down: it finishes what it runs but takes nothing new.
    pub draining: bool,
}

/// The host registry in Redis. Cheap to clone.
#[derive(Clone)]
pub struct HostRegistry {
    conn: crate::metrics::Timed<ConnectionManager>,
    prefix: Arc<str>,
    ttl: Duration,
}

impl HostRegistry {
    /// A registry under `prefix` whose entries expire `ttl` after their last heartbeat.
    pub fn new(conn: ConnectionManager, prefix: &str, ttl: Duration) -> Self {
        let conn = crate::metrics::Timed::new(conn, "registry");
        Self { conn, prefix: normalize_prefix(prefix).into(), ttl: ttl.max(Duration::from_millis(1)) }
    }

    fn host_key(&self, id: &str) -> String {
        format!("{}:host:{id}", self.prefix)
    }

    fn set_key(&self) -> String {
        format!("{}:hosts", self.prefix)
    }

    /// Writes `info` with the TTL and adds the host to the set.
    pub async fn heartbeat(&self, info: &HostInfo) -> anyhow::Result<()> {
        let json = serde_json::to_string(info).context("encode host info")?;
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.host_key(&info.id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(self.set_key())
            .arg(&info.id)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .context("write host heartbeat")
    }

    /// Removes the host at once (a clean shutdown).
    pub async fn remove(&self, id: &str) -> anyhow::Result<()> {
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(self.host_key(id))
            .ignore()
            .cmd("SREM")
            .arg(self.set_key())
            .arg(id)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .context("remove host")
    }

    /// The hosts whose last heartbeat has not expired, sorted by id. Expired ids are pruned from
    /// the set on the way.
    pub async fn list(&self) -> anyhow::Result<Vec<HostInfo>> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<String> =
            redis::cmd("SMEMBERS").arg(self.set_key()).query_async(&mut conn).await.context("list host ids")?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort_unstable();
        let keys: Vec<String> = ids.iter().map(|id| self.host_key(id)).collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.context("read hosts")?;

        let mut hosts = Vec::with_capacity(ids.len());
        let mut stale = Vec::new();
        for ((id, key), value) in ids.iter().zip(&keys).zip(values) {
            match value {
                None => stale.push((id, key)),
                Some(json) => match serde_json::from_str::<HostInfo>(&json) {
                    Ok(info) => hosts.push(info),
                    // Possibly a newer host version; its entry expires on its own if it is dead.
                    Err(err) => tracing::warn!(host.id = %id, "skip unreadable host info: {err}"),
                },
            }
        }
        if !stale.is_empty() {
            let mut prune = PRUNE.prepare_invoke();
            prune.key(self.set_key());
            for (id, key) in stale {
                prune.key(key).arg(id);
            }
            // Listing still succeeds if pruning fails; the next listing tries again.
            if let Err(err) = prune.invoke_async::<i64>(&mut conn).await {
                tracing::warn!("prune expired hosts: {err:#}");
            }
        }
        Ok(hosts)
    }
}

/// Heartbeats `info_fn()` every `interval` until `shutdown` is cancelled, then removes the host.
///
/// Choose `interval` at most a third of the registry's TTL so one lost heartbeat does not drop the
/// host. Await the handle at shutdown to be sure the removal has happened (it gives up after 2 s).
pub fn spawn_heartbeats<F>(
    registry: HostRegistry,
    interval: Duration,
    info_fn: F,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> HostInfo + Send + 'static,
{
    tokio::spawn(heartbeat_loop(registry, interval, info_fn, shutdown).in_current_span())
}

/// The loop behind [`spawn_heartbeats`], for callers that run it under their own task tracker.
pub async fn heartbeat_loop<F>(registry: HostRegistry, interval: Duration, info_fn: F, shutdown: CancellationToken)
where
    F: Fn() -> HostInfo,
{
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut id = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let info = info_fn();
        id = Some(info.id.clone());
        let sent = tokio::select! {
            () = shutdown.cancelled() => break,
            sent = registry.heartbeat(&info) => sent,
        };
        if let Err(err) = sent {
            tracing::warn!(host.id = %info.id, "heartbeat: {err:#}");
        }
    }
    let Some(id) = id else { return };
    match tokio::time::timeout(Duration::from_secs(2), registry.remove(&id)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(host.id = %id, "remove host at shutdown: {err:#}; it expires after the TTL"),
        Err(_) => tracing::warn!(host.id = %id, "remove host at shutdown timed out; it expires after the TTL"),
    }
}

/// Picks a host for an invocation of `warm_key` needing `memory_mb`, skipping draining hosts and
/// those in `exclude` (e.g. hosts that already refused this invocation).
///
/// 1. A host advertising an idle sandbox for `warm_key` (no new memory needed) that is below its
///    sandbox capacity; among several, the least loaded.
/// 2. Else the least-loaded host with `memory_mb` free and `in_flight < capacity_sandboxes`.
/// 3. Else `None`.
///
/// Load is `in_flight / capacity_sandboxes`; ties go to the host with more free memory, then to
/// the smaller id, so the choice is deterministic.
pub fn place<'a>(hosts: &'a [HostInfo], warm_key: &str, memory_mb: u64, exclude: &[String]) -> Option<&'a HostInfo> {
    let open =
        || hosts.iter().filter(|h| !h.draining && h.in_flight < h.capacity_sandboxes && !exclude.contains(&h.id));
    open()
        .filter(|h| h.warm.iter().any(|w| w == warm_key))
        .min_by(|a, b| by_load(a, b))
        .or_else(|| open().filter(|h| free_mb(h) >= memory_mb).min_by(|a, b| by_load(a, b)))
}

fn free_mb(h: &HostInfo) -> u64 {
    h.memory_budget_mb.saturating_sub(h.memory_used_mb)
}

/// Orders by `in_flight / capacity` (cross-multiplied, exact), then more free memory, then id.
fn by_load(a: &HostInfo, b: &HostInfo) -> Ordering {
    let load_a = u64::from(a.in_flight) * u64::from(b.capacity_sandboxes);
    let load_b = u64::from(b.in_flight) * u64::from(a.capacity_sandboxes);
    load_a.cmp(&load_b).then_with(|| free_mb(b).cmp(&free_mb(a))).then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::{HostInfo, place};

    const KEY: &str = "acct/fn/1/rev1";

    /// A host with `in_flight` of `capacity` sandboxes busy and `free` MB of a 4096 MB budget free.
    fn host(id: &str, in_flight: u32, capacity: u32, free: u64) -> HostInfo {
        HostInfo {
            id: id.to_owned(),
            grpc_addr: format!("{id}:7104"),
            capacity_sandboxes: capacity,
            memory_budget_mb: 4096,
            memory_used_mb: 4096 - free,
            in_flight,
            warm: Vec::new(),
            runtimes: vec!["python3.12".to_owned()],
            draining: false,
        }
    }

    fn warm(mut h: HostInfo, key: &str) -> HostInfo {
        h.warm.push(key.to_owned());
        h
    }

    fn draining(mut h: HostInfo) -> HostInfo {
        h.draining = true;
        h
    }

    struct Case {
        name: &'static str,
        hosts: Vec<HostInfo>,
        memory_mb: u64,
        exclude: &'static [&'static str],
        want: Option<&'static str>,
    }

    #[test]
    fn place_table() {
        let cases = [
            Case { name: "no hosts", hosts: vec![], memory_mb: 128, exclude: &[], want: None },
            Case {
                name: "one host with room",
                hosts: vec![host("a", 0, 4, 1024)],
                memory_mb: 128,
                exclude: &[],
                want: Some("a"),
            },
            Case {
                name: "warm host wins over an idle cold one",
                hosts: vec![host("a", 0, 10, 4096), warm(host("b", 5, 10, 256), KEY)],
                memory_mb: 128,
                exclude: &[],
                want: Some("b"),
            },
            Case {
                name: "warm host needs no free memory",
                hosts: vec![host("a", 0, 10, 4096), warm(host("b", 1, 10, 0), KEY)],
                memory_mb: 512,
                exclude: &[],
                want: Some("b"),
            },
            Case {
                name: "warm for another key does not count",
                hosts: vec![host("a", 0, 10, 4096), warm(host("b", 5, 10, 4096), "acct/fn/1/rev0")],
                memory_mb: 128,
                exclude: &[],
                want: Some("a"),
            },
            Case {
                name: "draining warm host is skipped",
                hosts: vec![host("a", 3, 10, 4096), draining(warm(host("b", 0, 10, 4096), KEY))],
                memory_mb: 128,
                exclude: &[],
                want: Some("a"),
            },
            Case {
                name: "excluded warm host is skipped",
                hosts: vec![host("a", 3, 10, 4096), warm(host("b", 0, 10, 4096), KEY)],
                memory_mb: 128,
                exclude: &["b"],
                want: Some("a"),
            },
            Case {
                name: "warm host at sandbox capacity is skipped",
                hosts: vec![host("a", 3, 10, 4096), warm(host("b", 10, 10, 4096), KEY)],
                memory_mb: 128,
                exclude: &[],
                want: Some("a"),
            },
            Case {
                name: "least loaded of two warm hosts",
                hosts: vec![warm(host("a", 6, 10, 4096), KEY), warm(host("b", 2, 10, 4096), KEY)],
                memory_mb: 128,
                exclude: &[],
                want: Some("b"),
            },
            Case {
                name: "load is relative to capacity",
                hosts: vec![host("a", 3, 4, 4096), host("b", 10, 40, 4096)],
                memory_mb: 128,
                exclude: &[],
                want: Some("b"),
            },
            Case {
                name: "equal load: more free memory wins",
                hosts: vec![host("a", 2, 10, 1024), host("b", 2, 10, 2048)],
                memory_mb: 128,
                exclude: &[],
                want: Some("b"),
            },
            Case {
                name: "full tie: smaller id wins",
                hosts: vec![host("b", 2, 10, 1024), host("a", 2, 10, 1024)],
                memory_mb: 128,
                exclude: &[],
                want: Some("a"),
            },
            Case {
                name: "not enough memory on the least loaded",
                hosts: vec![host("a", 0, 10, 100), host("b", 8, 10, 1024)],
                memory_mb: 128,
                exclude: &[],
                want: Some("b"),
            },
            Case {
                name: "exactly enough memory fits",
                hosts: vec![host("a", 0, 10, 128)],
                memory_mb: 128,
                exclude: &[],
                want: Some("a"),
            },
            Case {
                name: "over-committed host (used > budget) has no room",
                hosts: vec![HostInfo { memory_used_mb: 5000, ..host("a", 0, 10, 0) }],
                memory_mb: 1,
                exclude: &[],
                want: None,
            },
            Case {
                name: "host at sandbox capacity has no room",
                hosts: vec![host("a", 4, 4, 4096)],
                memory_mb: 128,
                exclude: &[],
                want: None,
            },
            Case {
                name: "zero capacity host has no room",
                hosts: vec![host("a", 0, 0, 4096)],
                memory_mb: 128,
                exclude: &[],
                want: None,
            },
            Case {
                name: "all draining",
                hosts: vec![draining(host("a", 0, 10, 4096)), draining(host("b", 0, 10, 4096))],
                memory_mb: 128,
                exclude: &[],
                want: None,
            },
            Case {
                name: "all excluded",
                hosts: vec![host("a", 0, 10, 4096), host("b", 0, 10, 4096)],
                memory_mb: 128,
                exclude: &["a", "b"],
                want: None,
            },
            Case {
                name: "excluded least loaded falls to the next",
                hosts: vec![host("a", 0, 10, 4096), host("b", 5, 10, 4096), host("c", 7, 10, 4096)],
                memory_mb: 128,
                exclude: &["a"],
                want: Some("b"),
            },
        ];
        for case in cases {
            let exclude: Vec<String> = case.exclude.iter().map(|s| (*s).to_owned()).collect();
            let got = place(&case.hosts, KEY, case.memory_mb, &exclude).map(|h| h.id.as_str());
            assert_eq!(got, case.want, "{}", case.name);
        }
    }

    #[test]
    fn host_info_round_trips_through_json() {
        let info = warm(host("a", 1, 8, 512), KEY);
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<HostInfo>(&json).unwrap(), info);
    }
}
