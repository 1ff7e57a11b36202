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
    listed: Option<(Instant, Vec<HostInfo>)>,
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
        let mut hosts = fleet.list().await?;
        anyhow::ensure!(!hosts.is_empty(), "no execution host is registered");
        let mut st = fleet.state.lock().unwrap_or_else(|p| p.into_inner());
        for h in &mut hosts {
            h.in_flight = h.in_flight.max(st.running.get(&h.id).copied().unwrap_or(0));
        }
        let Some(info) = place(&hosts, warm_key, memory_mb, exclude) else {
            return Ok(None);
        };
        let client = match st.clients.get(&info.id) {
            Some((addr, client)) if *addr == info.grpc_addr => client.clone(),
            _ => {
                let client = HostClient::connect(&info.id, &info.grpc_addr)?;
                st.clients.insert(info.id.clone(), (info.grpc_addr.clone(), client.clone()));
                client
            }
        };
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
                hosts
                    .iter()
                    .map(|info| match st.clients.get(&info.id) {
                        Some((addr, client)) if *addr == info.grpc_addr => Ok(client.clone()),
                        _ => {
                            let client = HostClient::connect(&info.id, &info.grpc_addr)?;
                            st.clients.insert(info.id.clone(), (info.grpc_addr.clone(), client.clone()));
                            Ok(client)
                        }
                    })
                    .collect()
            }
        }
    }

    /// Registered hosts as they reported themselves (`None` in process).
    pub async fn registered(&self) -> anyhow::Result<Option<Vec<HostInfo>>> {
        match self {
            Self::Local(_) => Ok(None),
            Self::Fleet(fleet) => Ok(Some(fleet.list().await?)),
        }
    }
}

impl Fleet {
    async fn list(&self) -> anyhow::Result<Vec<HostInfo>> {
        {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, hosts)) = &st.listed
                && at.elapsed() < LIST_TTL
            {
                return Ok(hosts.clone());
            }
        }
        let hosts = self.registry.list().await?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.clients.retain(|id, _| hosts.iter().any(|h| &h.id == id));
        st.listed = Some((Instant::now(), hosts.clone()));
        Ok(hosts)
    }
}
