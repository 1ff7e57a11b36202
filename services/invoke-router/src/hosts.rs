//! Where invocations run: the one in-process host (`lamina serve`) or the fleet of registered
//! execution hosts (distributed mode), chosen per invocation with warm-sandbox affinity.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lamina_exec_host::HostClient;
use lamina_fleet::registry::{HostInfo, HostRegistry, place};

/// How long a read of the registry is reused: placement between heartbeats also counts this
/// router's own placements.
const LIST_TTL: Duration = Duration::from_millis(200);

/// The hosts a router places invocations on. Cheap to clone.
#[derive(Clone)]
pub enum Hosts {
    Local(HostClient),
    Fleet(Arc<Fleet>),
}

/// Registered execution hosts, read from Redis.
pub struct Fleet {
    registry: HostRegistry,
    state: Mutex<FleetState>,
}

#[derive(Default)]
struct FleetState {
    listed: Option<(Instant, Arc<Vec<HostInfo>>)>,
    clients: HashMap<String, (String, HostClient)>,
    /// Invocations this router has running on each host.
    running: HashMap<String, u32>,
}

/// A host chosen for one invocation; dropping it ends this router's count of it.
pub struct Placed {
    pub client: HostClient,
    fleet: Option<Arc<Fleet>>,
}

impl Drop for Placed {
    fn drop(&mut self) {
        if let Some(fleet) = &self.fleet {
            let mut st = fleet.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = st.running.get_mut(self.client.id()) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl Hosts {
    /// The fleet registered in `registry`.
    pub fn fleet(registry: HostRegistry) -> Self {
        Self::Fleet(Arc::new(Fleet { registry, state: Mutex::default() }))
    }

    /// A host for an invocation of `warm_key` needing `memory_mb`, not one of `exclude`.
    /// `Ok(None)`: every host is full. `Err`: no host is registered, or the registry is unreachable.
    pub async fn place(&self, warm_key: &str, memory_mb: u64, exclude: &[String]) -> anyhow::Result<Option<Placed>> {
        let fleet = match self {
            Self::Local(host) => {
                return Ok(
                    (!exclude.iter().any(|id| id == host.id())).then(|| Placed { client: host.clone(), fleet: None })
                );
            }
            Self::Fleet(fleet) => fleet,
        };
        let listed = fleet.list().await?;
        anyhow::ensure!(!listed.is_empty(), "no execution host is registered");
        let mut st = fleet.state.lock().unwrap_or_else(|p| p.into_inner());
        // Between heartbeats, this router's own running invocations are the better count; the list
        // is copied only when they change it (it holds every host's warm keys).
        let running = |h: &HostInfo| st.running.get(&h.id).copied().unwrap_or(0);
        let hosts: std::borrow::Cow<'_, [HostInfo]> = if listed.iter().any(|h| running(h) > h.in_flight) {
            let mut copy = listed.to_vec();
            for h in &mut copy {
                h.in_flight = h.in_flight.max(running(h));
            }
            copy.into()
        } else {
            listed.as_slice().into()
        };
        let Some(info) = place(&hosts, warm_key, memory_mb, exclude) else {
            return Ok(None);
        };
        // No idle sandbox for the key anywhere: every router picks the same host for it (rendezvous
        // hashing), so the sandbox this invocation starts is the one the next invocation finds
        // warm, whichever router the next one goes through.
        let info = if info.warm.iter().any(|w| w == warm_key) {
            info
        } else {
            preferred(&hosts, warm_key, memory_mb, exclude).unwrap_or(info)
        };
        let client = st.client(info)?;
        *st.running.entry(info.id.clone()).or_default() += 1;
        Ok(Some(Placed { client, fleet: Some(fleet.clone()) }))
    }

    /// Every host (for logs and health).
    pub async fn all(&self) -> anyhow::Result<Vec<HostClient>> {
        match self {
            Self::Local(host) => Ok(vec![host.clone()]),
            Self::Fleet(fleet) => {
                let hosts = fleet.list().await?;
                let mut st = fleet.state.lock().unwrap_or_else(|p| p.into_inner());
                hosts.iter().map(|info| st.client(info)).collect()
            }
        }
    }
}

/// The open host with room that ranks highest for `warm_key` (highest-random-weight hashing).
fn preferred<'a>(hosts: &'a [HostInfo], warm_key: &str, memory_mb: u64, exclude: &[String]) -> Option<&'a HostInfo> {
    hosts
        .iter()
        .filter(|h| !h.draining && h.in_flight < h.capacity_sandboxes && !exclude.contains(&h.id))
        .filter(|h| h.memory_budget_mb.saturating_sub(h.memory_used_mb) >= memory_mb)
        .max_by_key(|h| rank(warm_key, &h.id))
}

/// A stable hash of (key, host): FNV-1a, the same in every router process.
fn rank(key: &str, host: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(host.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl FleetState {
    /// The (kept) client of a host, made anew when the host's address changed.
    fn client(&mut self, info: &HostInfo) -> anyhow::Result<HostClient> {
        if let Some((addr, client)) = self.clients.get(&info.id)
            && *addr == info.grpc_addr
        {
            return Ok(client.clone());
        }
        let client = HostClient::connect(&info.id, &info.grpc_addr)?;
        self.clients.insert(info.id.clone(), (info.grpc_addr.clone(), client.clone()));
        Ok(client)
    }
}

impl Fleet {
    async fn list(&self) -> anyhow::Result<Arc<Vec<HostInfo>>> {
        {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, hosts)) = &st.listed
                && at.elapsed() < LIST_TTL
            {
                return Ok(hosts.clone());
            }
        }
        let hosts = Arc::new(crate::within_deadline("list execution hosts", self.registry.list()).await?);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.clients.retain(|id, _| hosts.iter().any(|h| &h.id == id));
        st.listed = Some((Instant::now(), hosts.clone()));
        Ok(hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, in_flight: u32) -> HostInfo {
        HostInfo {
            id: id.into(),
            grpc_addr: String::new(),
            capacity_sandboxes: 4,
            memory_budget_mb: 1024,
            memory_used_mb: 0,
            in_flight,
            warm: Vec::new(),
            runtimes: Vec::new(),
            draining: false,
        }
    }

    #[test]
    fn every_router_prefers_the_same_host_for_a_key_and_keys_spread() {
        let hosts = vec![host("a", 0), host("b", 3), host("c", 1)];
        let mut reordered = hosts.clone();
        reordered.reverse();
        let mut chosen = std::collections::BTreeSet::new();
        for i in 0..60 {
            let key = format!("acct/f{i}/$LATEST/r");
            let one = preferred(&hosts, &key, 128, &[]).map(|h| h.id.clone());
            assert_eq!(one, preferred(&reordered, &key, 128, &[]).map(|h| h.id.clone()), "order-independent");
            chosen.insert(one.expect("a host"));
        }
        assert_eq!(chosen.len(), 3, "keys spread over every host");
    }

    #[test]
    fn the_preferred_host_must_be_open_and_have_room() {
        let key = "acct/f/$LATEST/r";
        let hosts = vec![host("a", 0), host("b", 0)];
        let first = preferred(&hosts, key, 128, &[]).expect("a host").id.clone();
        let other = if first == "a" { "b" } else { "a" };
        assert_eq!(preferred(&hosts, key, 128, std::slice::from_ref(&first)).map(|h| h.id.as_str()), Some(other));
        let mut full = hosts.clone();
        full.iter_mut().filter(|h| h.id == first).for_each(|h| h.in_flight = 4);
        assert_eq!(preferred(&full, key, 128, &[]).map(|h| h.id.as_str()), Some(other));
        let mut draining = hosts.clone();
        draining.iter_mut().filter(|h| h.id == first).for_each(|h| h.draining = true);
        assert_eq!(preferred(&draining, key, 128, &[]).map(|h| h.id.as_str()), Some(other));
        assert!(preferred(&hosts, key, 4096, &[]).is_none(), "no host has the memory");
    }
}
